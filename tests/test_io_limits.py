"""Every limit of ``verify.model.io`` at its boundary: the largest input it accepts and the smallest it refuses.

A limit tested only far from its bound (a 1 000-deep document against a bound of 64) lets an off-by-one or a
check 100x too lax survive; each test here sits on the bound and one step past it, under a small limit where the
default one would need a large file. Expected values come from the stated limits, not from the code's output.
"""
import os

import numpy as np
import pytest

from verify import io
from verify.errors import InvalidMDPError, UsageError
from verify.model.io import Limits, limits_scope


# --- Limits.max_file_bytes: read_regular_file and the readers above it --------------------------------------------

@pytest.mark.parametrize("limit", [1, 10, 4096])
def test_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(tmp_path, limit):
    at, over = tmp_path / "at.bin", tmp_path / "over.bin"
    at.write_bytes(b"x" * limit)
    over.write_bytes(b"x" * (limit + 1))
    assert io.read_regular_file(at, "file", max_bytes=limit) == b"x" * limit
    with pytest.raises(UsageError, match="more than the input limit"):
        io.read_regular_file(over, "file", max_bytes=limit)
    with limits_scope(Limits(max_file_bytes=limit)):       # the default comes from the limits in force
        assert io.read_regular_file(at, "file") == b"x" * limit
        with pytest.raises(UsageError, match="more than the input limit"):
            io.read_regular_file(over, "file")


def test_json_and_mdp_files_obey_the_file_limit(tmp_path):
    from verify.model.problem import load_problem

    text = (b'{"initial": [1], "transitions": [[[1]]], "rewards": [[0]], "gamma": 1, "horizon": 1}')
    path = tmp_path / "m.json"
    path.write_bytes(text)
    with limits_scope(Limits(max_file_bytes=len(text))):
        assert io.read_json_file(path)["horizon"] == 1
        assert load_problem(path).mdp.horizon == 1
    with limits_scope(Limits(max_file_bytes=len(text) - 1)):
        for read in (io.read_json_file, load_problem):
            with pytest.raises(UsageError, match="more than the input limit"):
                read(path)


def test_a_file_that_grows_while_read_is_cut_at_the_limit_plus_one_byte(tmp_path, monkeypatch):
    """The size check before reading can be stale (the file grows): the read loop itself never goes past the limit
    and refuses. A stat reporting the limit stands in for the file growing after it."""
    limit = 100
    path = tmp_path / "growing.bin"
    path.write_bytes(b"y" * (10 * limit))
    real_fstat = os.fstat
    seen = []

    def stale_fstat(fd):
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, limit,
                               st.st_atime, st.st_mtime, st.st_ctime))

    real_read = os.read

    def counting_read(fd, n):
        chunk = real_read(fd, n)
        seen.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "fstat", stale_fstat)
    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(UsageError, match="grew beyond the input limit"):
        io.read_regular_file(path, "file", max_bytes=limit)
    assert sum(seen) == limit + 1, seen


# --- MAX_DEPTH ------------------------------------------------------------------------------------------------------

def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("bound", [1, 3, io.MAX_DEPTH])
def test_json_nested_exactly_to_the_bound_is_read_and_one_more_level_is_refused(bound):
    value = io.load_json_text(_nested(bound), "f.json", max_depth=bound)
    for _ in range(bound):
        (value,) = value
    assert value == 1
    with pytest.raises(InvalidMDPError, match=f"nested more than {bound} levels deep \\(at character {bound}\\)"):
        io.load_json_text(_nested(bound + 1), "f.json", max_depth=bound)


def test_default_depth_bound_is_max_depth_and_objects_count_as_levels():
    assert io.MAX_DEPTH == 64                   # the documented bound (docs/reliability.md)
    io.load_json_text(_nested(io.MAX_DEPTH), "f.json")
    with pytest.raises(InvalidMDPError, match="nested more than 64 levels"):
        io.load_json_text(_nested(io.MAX_DEPTH + 1), "f.json")
    objects = b'{"a": ' * (io.MAX_DEPTH - 1) + b"[1]" + b"}" * (io.MAX_DEPTH - 1)
    io.load_json_text(objects, "f.json")
    with pytest.raises(InvalidMDPError, match="nested more than 64 levels"):
        io.load_json_text(b'{"a": ' + objects + b"}", "f.json")


# --- MAX_INT_DIGITS -------------------------------------------------------------------------------------------------

def test_integers_of_max_int_digits_stay_integers_and_one_digit_more_become_floats():
    assert io.MAX_INT_DIGITS == 18
    at, over = "9" * 18, "1" + "0" * 18                   # 10^18 - 1 and 10^18
    got = io.load_json_text(f"[{at}, -{at}, {over}, -{over}]".encode(), "f.json")
    assert [type(x) for x in got] == [int, int, float, float]
    assert got == [10**18 - 1, -(10**18 - 1), 1e18, -1e18]
    alone = io.load_json_text(f"[{at}, -{at}]".encode(), "f.json")   # no long run: the fast path without the hook
    assert [type(x) for x in alone] == [int, int]


# --- MAX_ABS_VALUE --------------------------------------------------------------------------------------------------

def test_npy_theta_at_max_abs_value_is_read_and_the_next_float_refused(tmp_path):
    bound = io.MAX_ABS_VALUE
    at, over = tmp_path / "at.npy", tmp_path / "over.npy"
    np.save(at, np.array([[bound, -bound]]))
    np.save(over, np.array([[0.0, -np.nextafter(bound, np.inf)]]))
    assert io.read_npy_file(at).tolist() == [[bound, -bound]]
    with pytest.raises(InvalidMDPError, match=r"entry \(0, 1\) is above 1e\+100"):
        io.read_npy_file(over)


def test_mdp_reward_at_max_abs_value_is_accepted_and_the_next_float_refused():
    from verify.model.problem import problem_from_dict

    def doc(reward):
        return {"initial": [1], "transitions": [[[1]]], "rewards": [[reward]], "gamma": 1, "horizon": 1}

    assert problem_from_dict(doc(-io.MAX_ABS_VALUE)).mdp.rewards.min() == -io.MAX_ABS_VALUE
    with pytest.raises(InvalidMDPError, match="1e\\+100"):
        problem_from_dict(doc(float(np.nextafter(io.MAX_ABS_VALUE, np.inf))))


# --- the budgets: Limits.max_memory and Limits.max_work --------------------------------------------------------------

def test_memory_and_work_at_the_limit_pass_and_one_more_is_refused():
    with limits_scope(Limits(max_memory=1000, max_work=500)):
        io.require_memory(1000, "x")
        io.require_work(500, "y")
        with pytest.raises(UsageError, match="x needs 1001 B, more than the memory limit 1000 B"):
            io.require_memory(1001, "x")
        with pytest.raises(UsageError, match="y is 5e\\+02 steps, more than the work limit 5e\\+02"):
            io.require_work(501, "y")
        for bad in (float("nan"), float("inf")):
            with pytest.raises(UsageError):
                io.require_memory(bad, "x")
            with pytest.raises(UsageError):
                io.require_work(bad, "y")


def test_json_parsing_budget_is_ten_bytes_per_byte_of_text():
    data = b"[1, 2, 3]"
    with limits_scope(Limits(max_memory=10 * len(data))):
        assert io.load_json_text(data, "f.json") == [1, 2, 3]
    with limits_scope(Limits(max_memory=10 * len(data) - 1)):
        with pytest.raises(UsageError, match="more than the memory limit"):
            io.load_json_text(data, "f.json")


def test_size_arguments_from_one_byte_to_four_eib():
    assert io.parse_size("1") == 1
    assert io.parse_size(str(2**62)) == io.parse_size("4194304T") == 2**62
    for bad in ("0", "0.5", str(2**63), "4194305T"):
        with pytest.raises(ValueError, match="out of range"):
            io.parse_size(bad)


# --- names: safe_filename's length and check_output_path's 255 bytes ------------------------------------------------

def test_safe_filename_keeps_max_length_characters_and_hashes_longer_names():
    assert io.safe_filename("n" * 80) == "n" * 80
    longer = io.safe_filename("n" * 81)
    assert len(longer) == 80 and longer != "n" * 80 and longer.startswith("n" * 71 + "-")
    assert io.safe_filename("n" * 81) != io.safe_filename("n" * 82)       # distinct names stay distinct
    assert io.safe_filename("abc", max_length=3) == "abc" and len(io.safe_filename("abcd", max_length=9)) == 4


def test_output_name_of_255_bytes_is_accepted_and_256_refused(tmp_path):
    assert io.check_output_path(tmp_path / ("a" * 255)).name == "a" * 255
    assert io.check_output_path(tmp_path / ("é" * 127 + "a")).name == "é" * 127 + "a"     # 255 bytes in UTF-8
    for name in ("a" * 256, "é" * 128):
        with pytest.raises(UsageError, match="longer than 255 bytes"):
            io.check_output_path(tmp_path / name)

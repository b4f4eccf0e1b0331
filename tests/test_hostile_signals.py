"""Ctrl-C and concurrent writers, with real processes.

- A subprocess sent SIGINT in the middle of a long ``mc`` or ``report --json FILE`` run exits 130 with one line on
  stderr, no traceback, and leaves no partial output file (none, or the whole file when it was written before the
  interrupt came) and no temporary file behind. The report is interrupted at fractions of the CPU a whole run takes
  on the host, so a faster host still interrupts it mid-work.
- Two concurrent writers of the same output without ``--force``: exactly one succeeds, the other refuses with one
  line, and the file holds the winner's complete output (never a mix, never silently replaced).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hostile_cases import BASE, stray_temporaries

from verify.errors import UsageError
from verify.io import atomic_write, atomic_write_with

ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str], cwd: Path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> subprocess.Popen:
    # SIGINT back to its default in the child: a test runner started in the background may ignore it, and Python
    # then never raises KeyboardInterrupt.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=cwd, stdout=stdout,
                            stderr=stderr, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _interrupt_after_cpu(args: list[str], cwd: Path, cpu: float, timeout: float = 120.0) \
        -> tuple[int, str, str] | None:
    """Run ``pgverify args`` and SIGINT it once it has used ``cpu`` seconds of CPU (past its imports, inside the
    work): (exit status, stdout, stderr); None when it ended (with exit 0) before it had used that much."""
    # Its stdout and stderr go to files: the report's text outgrows a pipe's buffer, and a child blocked on a full
    # pipe uses no CPU (it "never got going").
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = _start(args, cwd, stdout=out_file, stderr=err_file)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and _cpu_seconds(proc.pid) < cpu:
            assert time.monotonic() < deadline, "the child never got going"
            time.sleep(0.05)
        interrupted = proc.poll() is None
        if interrupted:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
        assert interrupted or proc.returncode == 0, ("ended uninterrupted but failed", proc.returncode, err)
        return (proc.returncode, out, err) if interrupted else None


def _child_cpu_seconds(args: list[str], cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = _start(args, cwd)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to time the interrupt")
def test_ctrl_c_during_mc_exits_130_with_one_line(tmp_path):
    f = tmp_path / "chain.json"
    f.write_text(json.dumps(BASE))
    args = ["mc", str(f), "--estimator", "reward_to_go", "--episodes", "100000000", "--json"]
    ended = _interrupt_after_cpu(args, tmp_path, cpu=1.5)
    assert ended is not None, "10^8 episodes ended within 1.5 CPU-s"
    code, out, err = ended
    assert code == 130, (code, err)
    lines = err.strip().splitlines()
    assert lines == ["pgverify mc: interrupted (Ctrl-C); no partial output file is left"], err
    assert out == ""


REPORT = ["report", "--quick", "--no-color", "--json", "report.json"]


@pytest.fixture(scope="module")
def report_cpu(tmp_path_factory) -> float:
    """CPU seconds of one whole ``REPORT`` run on this host: the interrupts below land at fractions of it, so a
    faster host (or a faster report) still interrupts the work instead of a finished run."""
    return _child_cpu_seconds(REPORT, tmp_path_factory.mktemp("whole"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to time the interrupt")
@pytest.mark.parametrize("fraction", [0.5, 0.7, 0.9])   # at fixed 1.2 and 1.6 s it once ended by SIGINT (-2)
def test_ctrl_c_during_report_leaves_no_partial_json(tmp_path, report_cpu, fraction):
    out_file = tmp_path / "report.json"
    for attempt in range(4):
        # A run that ends before the interrupt, or takes it once its work is done (exit 0, the file whole: correct),
        # did not test an interrupt: again, earlier. The CPU a run needs varies by tens of per cent.
        cpu = report_cpu * fraction * 0.8 ** attempt
        ended = _interrupt_after_cpu(REPORT, tmp_path, cpu=cpu)
        if ended is None or ended[0] == 0:
            assert ended is None or not ended[2], ended
            json.loads(out_file.read_text())        # whole, not partial
            out_file.unlink()
            continue
        code, _, err = ended
        assert code == 130, (code, err)
        assert err.strip().splitlines() == ["pgverify report: interrupted (Ctrl-C); no partial output file is left"], \
            err
        assert "Traceback" not in err
        if out_file.exists():       # written whole before the interrupt (it came while the text was printed)
            json.loads(out_file.read_text())
        assert not stray_temporaries(tmp_path), stray_temporaries(tmp_path)
        return
    pytest.fail(f"four runs ended before an interrupt at {fraction} x {report_cpu:.2f} CPU-s or earlier")


def test_ctrl_c_inside_a_write_leaves_nothing(tmp_path):
    """An interrupt while the temporary file is being written: neither it nor the target survives."""
    target = tmp_path / "out.json"

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, write)
    assert list(tmp_path.iterdir()) == []


def test_two_writers_race_exactly_one_wins(tmp_path):
    """Both pass the up-front check (a barrier holds them until both have), then both write: one link succeeds."""
    target = tmp_path / "same.json"
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def writer(name: str) -> None:
        def write(tmp: Path) -> None:
            tmp.write_text(name * 1000)
            barrier.wait(timeout=10)       # both have checked the target and written their temporary file

        try:
            atomic_write_with(target, write)
            outcomes[name] = "wrote"
        except UsageError as exc:
            outcomes[name] = str(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [n for n, o in outcomes.items() if o == "wrote"]
    assert len(winners) == 1, outcomes
    loser = "b" if winners == ["a"] else "a"
    assert "exists (created while this run worked); pass --force" in outcomes[loser]
    assert target.read_text() == winners[0] * 1000            # the winner's bytes, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json"]


def test_force_replaces_atomically(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write(target, "old")
    with pytest.raises(UsageError, match="exists; pass --force"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    atomic_write(target, "new", force=True)
    assert target.read_text() == "new"


@pytest.mark.slow
def test_two_concurrent_report_json_writers(tmp_path):
    """The issue's case: two `report --json SAME` without --force started together; one writes, one refuses."""
    out_file = tmp_path / "same.json"
    procs = [_start(["report", "--quick", "--no-color", "--json", str(out_file)], tmp_path) for _ in range(2)]
    # communicate, not wait: the report's text on stdout outgrows a pipe's buffer, and a writer blocked on a full
    # pipe would never exit
    outs = [p.communicate(timeout=600) for p in procs]
    results = [(p.returncode, *out) for p, out in zip(procs, outs)]
    codes = sorted(code for code, _, _ in results)
    refused = [err for code, _, err in results if code == 2]
    assert codes in ([0, 2], [1, 2]), [(c, e[-300:]) for c, _, e in results]
    assert len(refused) == 1 and len(refused[0].strip().splitlines()) == 1, refused
    assert "exists" in refused[0] and "--force" in refused[0]
    doc = json.loads(out_file.read_text())                     # complete, parseable: the winner's document
    assert doc["quick"] is True
    assert not stray_temporaries(tmp_path)


def test_concurrent_export_gym_writers(tmp_path):
    pytest.importorskip("gymnasium")
    for pair in range(3):
        out_file = tmp_path / f"same{pair}.json"
        procs = [_start(["export-gym", "FrozenLake-v1", "-o", str(out_file)], tmp_path) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        results = [(p.returncode, *out) for p, out in zip(procs, outs)]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 2], [(c, e) for c, _, e in results]
        err = next(e for c, _, e in results if c == 2)
        assert len(err.strip().splitlines()) == 1 and "exists" in err, err
        json.loads(out_file.read_text())
    assert not stray_temporaries(tmp_path)


def test_closed_pipe_is_not_an_error():
    """`pgverify estimators | head -1`: rich turns the broken pipe into SystemExit(1); that is no user code's exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)                                  # every write fails: a reader that has gone away
    try:
        res = subprocess.run([sys.executable, "-m", "verify", "estimators", "--no-color"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert res.returncode == 0 and res.stderr == "", (res.returncode, res.stderr[-500:])

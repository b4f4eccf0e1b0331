"""The walk-through of docs/frameworks.md: check a PyTorch REINFORCE loss, then two buggy variants.

    python -m examples.frameworks.tutorial
"""
from examples.frameworks.problem import two_step
from examples.frameworks.torch_losses import ActorCritic, logits, normalized_advantages, reinforce, restarted_discount
from verify.frameworks.torch import check_loss


def main() -> None:
    mdp = two_step()                                   # 3 trajectories: every verdict below is exact
    policy = ActorCritic(mdp.n_states, mdp.n_actions)  # shared trunk, policy head, value head
    for loss in (reinforce, restarted_discount, normalized_advantages):
        check = check_loss(policy, loss, mdp, logits=logits, batch_size=2, second_batch_size=4)
        print(check.format(), end="\n\n")


if __name__ == "__main__":
    main()

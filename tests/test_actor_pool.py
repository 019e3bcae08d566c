"""Actor plans for scoring and evaluation: pure planning, no Ray needed."""

import pytest

from labelwise.actor_pool import plan_for


def test_two_core_laptop_one_actor_two_threads_one_cpu_reserved():
    plan = plan_for("auto", cpus=2, gpus=0)
    assert (plan.device, plan.min_actors, plan.max_actors, plan.threads, plan.num_cpus) == ("cpu", 1, 1, 2, 1.0)


def test_big_cpu_node_actors_reserve_their_threads_and_leave_a_core():
    plan = plan_for("auto", cpus=32, gpus=0)
    assert plan.device == "cpu"
    assert plan.num_cpus == plan.threads  # Ray never packs more threads than cores on a node
    assert plan.max_actors * plan.threads <= 31


def test_many_small_nodes_no_actor_bigger_than_a_node():
    plan = plan_for("auto", cpus=8, gpus=0, node_cpus=2, can_grow=True)
    assert plan.threads <= 2 and plan.num_cpus <= 2
    assert plan.max_actors >= 3  # the cores are still used, by more actors


def test_gpu_cluster_one_actor_per_gpu():
    plan = plan_for("auto", cpus=16, gpus=4)
    assert (plan.device, plan.num_gpus, plan.min_actors, plan.max_actors) == ("cuda", 1.0, 1, 4)
    assert plan_for("cuda", cpus=16, gpus=4, max_actors=2).max_actors == 2
    assert plan_for("cpu", cpus=16, gpus=4).device == "cpu"


def test_cuda_on_a_local_ray_without_gpu_is_an_error_at_once():
    with pytest.raises(RuntimeError, match="no GPU"):
        plan_for("cuda", cpus=2, gpus=0, can_grow=False)


def test_autoscaling_cluster_plans_gpu_actors_before_any_gpu_node_is_up():
    plan = plan_for("cuda", cpus=4, gpus=0, max_actors=8, can_grow=True)
    assert (plan.device, plan.num_gpus, plan.min_actors, plan.max_actors) == ("cuda", 1.0, 1, 8)
    # a fixed local Ray caps at the GPUs it has
    assert plan_for("cuda", cpus=4, gpus=2, max_actors=8, can_grow=False).max_actors == 2

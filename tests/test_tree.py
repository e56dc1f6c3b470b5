"""The power tree: shape, limits, aggregation (paper Stage 4) and resampling."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.facility.tree import (aggregate, aggregate_chunk, build_tree, finish_sums, new_sums, nodes_at,
                                 resample_mean, server_indices_under, servers, tree_from_layout)


@pytest.fixture
def case_tree() -> nx.DiGraph:
    return build_tree(10, 6, 4, configs="llama70b_a100", limits_w={"row": 600e3, "row3": 500e3})


def test_paper_case_tree_has_one_site_ten_rows_sixty_racks_240_servers(case_tree):
    assert nodes_at(case_tree, "site") == ["site"]
    assert len(nodes_at(case_tree, "row")) == 10
    assert len(nodes_at(case_tree, "rack")) == 60
    assert len(servers(case_tree)) == 240
    assert nx.is_arborescence(case_tree)
    for row in nodes_at(case_tree, "row"):
        assert list(case_tree.predecessors(row)) == ["site"]
        assert len(list(case_tree.successors(row))) == 6


def test_servers_are_named_by_place_and_indexed_row_by_row(case_tree):
    names = servers(case_tree)
    assert names[0] == "row0/rack0/srv0"
    assert names[5] == "row0/rack1/srv1"
    assert names[-1] == "row9/rack5/srv3"
    assert [case_tree.nodes[n]["index"] for n in names] == list(range(240))
    assert case_tree.nodes[names[7]]["config"] == "llama70b_a100"
    assert list(case_tree.predecessors("row2/rack3/srv1")) == ["row2/rack3"]


def test_level_limit_applies_to_every_row_and_a_named_node_overrides_it(case_tree):
    assert case_tree.nodes["row0"]["limit_w"] == 600e3
    assert case_tree.nodes["row3"]["limit_w"] == 500e3
    assert case_tree.nodes["site"]["limit_w"] is None
    assert case_tree.nodes["row0/rack0"]["limit_w"] is None


def test_a_limit_on_a_missing_node_is_refused_with_its_name_and_the_existing_names():
    with pytest.raises(DcsimInputError) as err:
        build_tree(2, 2, 2, limits_w={"row7": 1e3})
    message = str(err.value)
    assert "row7" in message and "1000" in message and "row0" in message and "row1" in message


def test_a_non_positive_limit_is_refused():
    with pytest.raises(DcsimInputError, match="row0"):
        build_tree(2, 2, 2, limits_w={"row0": -5.0})


def test_server_indices_under_a_rack_and_a_row(case_tree):
    np.testing.assert_array_equal(server_indices_under(case_tree, "row1/rack2"), [32, 33, 34, 35])
    np.testing.assert_array_equal(server_indices_under(case_tree, "row9"), np.arange(216, 240))
    assert server_indices_under(case_tree, "site").size == 240


def test_per_server_configs_follow_index_order():
    tree = build_tree(1, 2, 2, configs=["a", "b", "c", "d"])
    assert [tree.nodes[n]["config"] for n in servers(tree)] == ["a", "b", "c", "d"]
    with pytest.raises(DcsimInputError, match="configs"):
        build_tree(1, 2, 2, configs=["a", "b"])


def test_layout_keeps_the_given_order_and_refuses_a_rack_in_two_rows():
    layout = [{"row": "A", "rack": "A/r1", "server": "A/r1/x", "config": "h100"},
              {"row": "B", "rack": "B/r1", "server": "B/r1/y"},
              {"row": "A", "rack": "A/r1", "server": "A/r1/z"}]
    tree = tree_from_layout(layout)
    assert servers(tree) == ["A/r1/x", "B/r1/y", "A/r1/z"]
    assert tree.nodes["B/r1/y"]["config"] == "default"
    np.testing.assert_array_equal(server_indices_under(tree, "A"), [0, 2])
    bad = layout + [{"row": "B", "rack": "A/r1", "server": "B/A/w"}]
    with pytest.raises(DcsimInputError, match="A/r1"):
        tree_from_layout(bad)
    with pytest.raises(DcsimInputError, match="duplicate"):
        tree_from_layout(layout + [dict(layout[0])])


def test_rack_is_servers_plus_p_base_row_is_racks_and_site_is_pue_times_it_at_every_step(case_tree):
    rng = np.random.default_rng(0)
    gpu = rng.uniform(300.0, 6500.0, size=(240, 50))
    traces = aggregate(case_tree, gpu, p_base_w=1000.0, pue=1.3)
    for rack in nodes_at(case_tree, "rack"):
        idx = server_indices_under(case_tree, rack)
        np.testing.assert_allclose(traces[rack], (gpu[idx] + 1000.0).sum(axis=0), rtol=1e-12)
    for row in nodes_at(case_tree, "row"):
        racks = list(case_tree.successors(row))
        np.testing.assert_allclose(traces[row], sum(traces[r] for r in racks), rtol=1e-12)
    it = (gpu + 1000.0).sum(axis=0)
    np.testing.assert_allclose(traces["site"], 1.3 * it, rtol=1e-12)
    np.testing.assert_allclose(traces["site"], 1.3 * sum(traces[r] for r in nodes_at(case_tree, "row")), rtol=1e-12)


def test_per_server_p_base_and_server_traces():
    tree = build_tree(1, 1, 3)
    gpu = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    traces = aggregate(tree, gpu, p_base_w=np.array([10.0, 20.0, 30.0]), pue=1.0, include_servers=True)
    np.testing.assert_array_equal(traces["row0/rack0"], [69.0, 72.0])
    np.testing.assert_array_equal(traces["row0/rack0/srv1"], [23.0, 24.0])
    np.testing.assert_array_equal(traces["site"], [69.0, 72.0])


def test_chunked_aggregation_in_any_order_equals_one_shot(case_tree):
    rng = np.random.default_rng(1)
    gpu = rng.uniform(300.0, 6500.0, size=(240, 40)).astype(np.float32)
    base = rng.uniform(800.0, 1200.0, size=240)
    whole = aggregate(case_tree, gpu, base, pue=1.2)
    sums = new_sums(case_tree, 40)
    for chunk in np.array_split(rng.permutation(240), 7):
        aggregate_chunk(case_tree, sums, gpu[chunk], chunk, base)
    finish_sums(case_tree, sums, pue=1.2)
    assert set(sums) == set(whole)
    for node in whole:
        np.testing.assert_allclose(sums[node], whole[node], rtol=1e-12)
        assert sums[node].dtype == np.float64


def test_aggregate_refuses_a_power_matrix_of_the_wrong_shape(case_tree):
    with pytest.raises(DcsimInputError, match="gpu_power_w"):
        aggregate(case_tree, np.zeros((239, 10)), 1000.0, 1.3)
    with pytest.raises(DcsimInputError, match="pue"):
        aggregate(case_tree, np.zeros((240, 10)), 1000.0, 0.9)


def test_resample_mean_averages_whole_blocks_and_drops_a_partial_one():
    power = np.arange(10.0)  # 2.5 s at 250 ms
    np.testing.assert_array_equal(resample_mean(power, 0.25, 1.0), [1.5, 5.5])
    np.testing.assert_array_equal(resample_mean(power, 0.25, 0.25), power)
    two = np.stack([power, 2 * power])
    np.testing.assert_array_equal(resample_mean(two, 0.25, 0.5), [[0.5, 2.5, 4.5, 6.5, 8.5], [1, 5, 9, 13, 17]])


def test_resample_mean_refuses_a_resolution_not_a_multiple_of_the_step():
    with pytest.raises(DcsimInputError, match="resolution_s"):
        resample_mean(np.ones(8), 0.25, 0.3)
    with pytest.raises(DcsimInputError, match="resolution_s"):
        resample_mean(np.ones(8), 0.25, 5.0)

"""Index retrieval parity with the official pipeline's intermediates (rvc_pipeline_tiny) and edge cases."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from rvc.errors import AssetError, InvalidInput
from rvc.infer.index import FeatureIndex, neighbour_weights
from tests.asset_files import assert_absent_and_garbage_files_are_asset_errors

INDEX_NAME = "added_IVF5_Flat_nprobe_1_tiny_v2.index"


@pytest.fixture(scope="module")
def feature_index(pipeline_tiny: Path) -> FeatureIndex:
    return FeatureIndex.load(pipeline_tiny / INDEX_NAME)


@pytest.fixture(scope="module")
def golden(pipeline_tiny: Path) -> dict[str, np.ndarray]:
    with np.load(pipeline_tiny / "expected_rmvpe.npz") as data:
        return {key: data[key] for key in ("hubert_feats", "index_score", "index_ix", "feats_blended")}


def test_vectors_are_reconstructed_once_in_insertion_order(
    feature_index: FeatureIndex, pipeline_tiny: Path
) -> None:
    with np.load(pipeline_tiny / "index_vectors.npz") as data:
        np.testing.assert_array_equal(feature_index.vectors, data["vectors"])
    assert (feature_index.ntotal, feature_index.dim) == (200, 768)
    assert faiss.extract_index_ivf(feature_index.index).nprobe == 1


def test_search_matches_the_official_pipeline(feature_index: FeatureIndex, golden) -> None:
    scores, ids = feature_index.search(golden["hubert_feats"])
    np.testing.assert_array_equal(ids, golden["index_ix"])
    np.testing.assert_allclose(scores, golden["index_score"], rtol=1e-5)


def test_blend_matches_the_official_pipeline(feature_index: FeatureIndex, golden) -> None:
    trace: dict[str, list[np.ndarray]] = {}
    feats = torch.from_numpy(golden["hubert_feats"]).unsqueeze(0)
    blended = feature_index.blend(feats, 0.75, trace=trace)
    assert blended.shape == feats.shape and blended.dtype == torch.float32
    assert float(np.abs(blended[0].numpy() - golden["feats_blended"]).max()) <= 1e-4
    np.testing.assert_array_equal(trace["index_ix"][0], golden["index_ix"])
    numpy_blend = feature_index.blend(golden["hubert_feats"], 0.75)
    np.testing.assert_allclose(numpy_blend, blended[0].numpy(), atol=1e-6, rtol=0)


def test_rate_zero_and_one_are_the_endpoints(feature_index: FeatureIndex, golden) -> None:
    feats = golden["hubert_feats"][:20]
    np.testing.assert_array_equal(feature_index.blend(feats, 0.0), feats)
    np.testing.assert_allclose(feature_index.blend(feats, 1.0), feature_index.retrieve(feats), atol=1e-6)
    with pytest.raises(InvalidInput, match="index_rate"):
        feature_index.blend(feats, 1.5)


def test_exact_match_takes_all_the_weight(feature_index: FeatureIndex) -> None:
    queries = feature_index.vectors[[3, 150]]
    np.testing.assert_allclose(feature_index.retrieve(queries), queries, atol=1e-6)


def test_weights_guard_zero_scores_and_missing_neighbours() -> None:
    scores = np.array([[4.0, 16.0, 3.4e38], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    ids = np.array([[5, 7, -1], [1, 2, 3], [-1, -1, -1]])
    weights = neighbour_weights(scores, ids)
    np.testing.assert_allclose(weights[0], [16 / 17, 1 / 17, 0.0], rtol=1e-6)
    np.testing.assert_allclose(weights[1], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(weights[2], [0.0, 0.0, 0.0])
    assert np.isfinite(weights).all()


def test_frames_in_short_inverted_lists_get_finite_blends(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(50, 1, (3, 4))]).astype(np.float32)
    index = faiss.index_factory(4, "IVF2,Flat")
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "small.index"))
    loaded = FeatureIndex.load(tmp_path / "small.index")
    query = np.full((1, 4), 50.0, dtype=np.float32)
    _, ids = loaded.search(query)
    assert (ids == -1).any()  # only 3 vectors live in that list
    retrieved = loaded.retrieve(query)
    assert np.isfinite(retrieved).all() and np.abs(retrieved - 50).max() < 5


def test_unusable_index_files_are_asset_errors(tmp_path: Path, feature_index: FeatureIndex) -> None:
    trained_only = faiss.index_factory(4, "IVF1,Flat")
    trained_only.train(np.zeros((4, 4), dtype=np.float32))
    faiss.write_index(trained_only, str(tmp_path / "trained.index"))
    with pytest.raises(AssetError, match="holds no vectors"):
        FeatureIndex.load(tmp_path / "trained.index")
    assert_absent_and_garbage_files_are_asset_errors(FeatureIndex.load, tmp_path, ".index")
    with pytest.raises(AssetError, match="768-d vectors but the features are 256-d"):
        feature_index.blend(np.zeros((3, 256), dtype=np.float32), 0.5)

"""PerceptionCore: batching by resolution, confidence, OOD score and per-camera hysteresis."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import numpy as np
import pytest

from dudes_ros.config import ConfigError
from dudes_ros.inference.predictor import Predictor, check_batch
from dudes_ros.perception import OodConfig, PerceptionCore, confidence_image


class RedIsUncertainPredictor(Predictor):
    """Test-only predictor whose output is a function of the pixels: label = green % 19,
    uncertainty = red / 255. Records the batch shapes it was called with."""

    backend = "test"

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_batch(images)
        self.calls.append(images.shape)
        return images[..., 1] % 19, images[..., 0].astype(np.float32) / 255.0


def frame(h: int, w: int, red_fraction: float, green: int = 5) -> np.ndarray:
    """uint8 [h, w, 3]: the first ``red_fraction`` of rows have red 255 (u = 1), else red 0."""
    image = np.zeros((h, w, 3), np.uint8)
    image[: round(h * red_fraction), :, 0] = 255
    image[..., 1] = green
    return image


OOD = OodConfig(pixel_threshold=0.5, frame_threshold=0.2, raise_after=2, clear_after=3)


def test_outputs_follow_the_predictor_exactly():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, [""])
    image = np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    result = core.process({"": image})[""]
    u = image[..., 0].astype(np.float32) / 255.0
    np.testing.assert_array_equal(result.labels, image[..., 1] % 19)
    np.testing.assert_array_equal(result.uncertainty, u)
    np.testing.assert_array_equal(result.confidence, np.round(255 * (1 - u)).astype(np.uint8))
    assert result.ood_score == np.mean(u > 0.5) and result.ood is OOD
    assert result.inference_ms >= 0.0


def test_confidence_is_rounded_and_clipped():
    u = np.array([[0.0, 1.0, 0.5, 1.0 / 255, -0.2, 1.3]], np.float32)
    np.testing.assert_array_equal(confidence_image(u), [[255, 0, 128, 254, 255, 0]])


def test_confidence_matches_the_numpy_expression_on_a_full_frame():
    rng = np.random.default_rng(3)
    u = rng.uniform(-0.1, 1.1, (512, 1024)).astype(np.float32)
    exact = np.clip(255.0 - 255.0 * u.astype(np.float64), 0, 255)
    got = confidence_image(u).astype(np.int16)
    away_from_ties = np.abs(exact - np.floor(exact) - 0.5) > 1e-3  # float32 rounding decides ties
    assert away_from_ties.mean() > 0.99
    np.testing.assert_array_equal(got[away_from_ties], np.rint(exact[away_from_ties]))
    assert np.abs(got - np.rint(exact)).max() <= 1


def test_same_resolution_frames_share_one_batch_and_others_get_their_own():
    predictor = RedIsUncertainPredictor()
    core = PerceptionCore(predictor, OOD, ["front", "left", "rear"])
    results = core.process({"rear": frame(4, 6, 0.0, green=3), "front": frame(4, 6, 0.5),
                            "left": frame(8, 4, 1.0, green=7)})
    assert sorted(predictor.calls) == [(1, 8, 4, 3), (2, 4, 6, 3)]
    assert list(results) == ["front", "left", "rear"]
    assert results["front"].ood_score == 0.5 and results["left"].ood_score == 1.0
    assert results["rear"].ood_score == 0.0 and (results["rear"].labels == 3).all()
    assert results["left"].labels.shape == (8, 4) and (results["left"].labels == 7).all()


def test_batches_are_split_to_the_predictors_limit():
    predictor = RedIsUncertainPredictor()
    predictor.max_batch = 2
    cameras = [f"cam{i}" for i in range(5)]
    core = PerceptionCore(predictor, OOD, cameras)
    results = core.process({c: frame(4, 6, i / 4, green=i) for i, c in enumerate(cameras)})
    assert predictor.calls == [(2, 4, 6, 3), (2, 4, 6, 3), (1, 4, 6, 3)]
    assert [results[c].ood_score for c in cameras] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [int(results[c].labels[0, 0]) for c in cameras] == [0, 1, 2, 3, 4]


def test_alarm_is_debounced_per_camera():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["a", "b"])
    anomaly_a = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]  # frames where camera a sees the anomaly
    alarms_a, alarms_b = [], []
    for seen in anomaly_a:
        out = core.process({"a": frame(10, 4, 0.6 if seen else 0.1), "b": frame(10, 4, 0.1)})
        alarms_a.append(out["a"].alarm)
        alarms_b.append(out["b"].alarm)
    # raised on the 2nd frame over threshold, cleared on the 3rd frame under it
    assert alarms_a == [False, False, False, True, True, True, True, True, False, False, False]
    assert not any(alarms_b)


def test_a_missing_camera_keeps_its_state():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["a", "b"])
    for _ in range(2):
        core.process({"a": frame(10, 4, 0.9)})
    assert core.process({"b": frame(10, 4, 0.0)}).keys() == {"b"}
    assert core.process({"a": frame(10, 4, 0.9)})["a"].alarm


def test_thresholds_change_at_run_time():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, [""])
    assert not core.process({"": frame(10, 4, 0.3)})[""].alarm
    core.update_ood(frame_threshold=0.25, raise_after=1)
    assert core.process({"": frame(10, 4, 0.3)})[""].alarm
    core.reset()
    assert core.process({"": frame(10, 4, 0.0)})[""].alarm is False


class SwappingPredictor(RedIsUncertainPredictor):
    """Calls ``swap()`` inside its first ``predict``: a setter that lands mid-frame."""

    def __init__(self, swap) -> None:
        super().__init__()
        self.swap = swap

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.calls) == 0:
            self.swap()
        return super().predict(images)


def test_an_ood_change_mid_frame_applies_from_the_next_call():
    """Two resolutions = two predict calls in one ``process``; the setter runs during the
    first: both cameras are still scored, debounced and reported with the old settings."""
    old = OodConfig(pixel_threshold=0.5, frame_threshold=0.2, raise_after=1, clear_after=1)
    new = OodConfig(pixel_threshold=0.05, frame_threshold=0.9, raise_after=1, clear_after=1)
    core = None
    predictor = SwappingPredictor(lambda: core.set_ood(new))
    core = PerceptionCore(predictor, old, ["a", "b"])
    # u = 1 on 30 % of rows, 0.1 elsewhere: 0.3 of pixels over 0.5, all of them over 0.05
    a, b = frame(10, 4, 0.3), frame(20, 4, 0.3)
    a[..., 0] = np.where(a[..., 0] == 255, 255, 26)
    b[..., 0] = np.where(b[..., 0] == 255, 255, 26)
    first = core.process({"a": a, "b": b})
    assert len(predictor.calls) == 2
    for result in first.values():
        assert result.ood is old
        assert result.ood_score == pytest.approx(0.3) and result.alarm  # 0.3 > 0.2, k = 1
    second = core.process({"a": a, "b": b})
    for result in second.values():
        assert result.ood is new
        assert result.ood_score == 1.0 and result.alarm  # 1.0 > 0.9
    third = core.process({"a": frame(10, 4, 0.0)})["a"]
    assert third.ood is new and third.ood_score == 0.0 and not third.alarm


def test_setting_equal_ood_values_keeps_the_debounce_count():
    """The node sets the OOD config again on any runtime parameter change; equal values must
    not restart a count in progress (raise_after 2: the alarm rises on the second frame)."""
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["a"])
    over = frame(10, 4, 0.5)  # 0.5 of pixels over 0.5 > 0.2
    assert not core.process({"a": over})["a"].alarm
    core.set_ood(replace(OOD))  # equal, not identical
    assert core.process({"a": over})["a"].alarm
    core.set_ood(replace(OOD, frame_threshold=0.3))  # a real change restarts the count
    below = frame(10, 4, 0.0)
    assert core.process({"a": below})["a"].alarm  # clear_after 3: still raised
    core.set_ood(replace(OOD, frame_threshold=0.25))
    results = [core.process({"a": below})["a"].alarm for _ in range(3)]
    assert results == [True, True, False]  # the clear count restarted at the change


def test_concurrent_ood_setter_never_mixes_settings_within_a_frame():
    """A thread swaps between two configs as fast as it can while frames are processed: every
    result must be explained entirely by the config it reports (score with its pixel
    threshold, alarm with its frame threshold), and both configs must have been seen."""
    # A: pixel 0.5 -> score 0.3, frame 0.2 -> over; B: pixel 0.05 -> score 1.0, frame 0.95
    # -> over. A mix (A's pixel, B's frame) gives 0.3 < 0.95: under, so the alarm clears.
    configs = (OodConfig(0.5, 0.2, raise_after=1, clear_after=1),
               OodConfig(0.05, 0.95, raise_after=1, clear_after=1))
    core = PerceptionCore(RedIsUncertainPredictor(), configs[0], ["a"])
    image = frame(10, 4, 0.3)
    image[..., 0] = np.where(image[..., 0] == 255, 255, 26)
    stop = threading.Event()

    def setter():
        i = 0
        while not stop.is_set():
            core.set_ood(configs[i % 2])
            i += 1

    thread = threading.Thread(target=setter)
    thread.start()
    seen = set()
    try:
        for _ in range(3000):
            result = core.process({"a": image})["a"]
            assert result.ood in configs
            expected = 0.3 if result.ood is configs[0] else 1.0
            assert result.ood_score == pytest.approx(expected)
            assert result.alarm, "scored with one config and debounced with the other"
            seen.add(configs.index(result.ood))
    finally:
        stop.set()
        thread.join()
    assert seen == {0, 1}


def test_bad_inputs_name_what_was_wrong():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["a"])
    with pytest.raises(ValueError, match=r"unknown camera\(s\) \['x'\]"):
        core.process({"x": frame(4, 4, 0)})
    with pytest.raises(ValueError, match="camera 'a': expected RGB uint8"):
        core.process({"a": np.zeros((4, 4), np.uint8)})
    with pytest.raises(ValueError, match="distinct"):
        PerceptionCore(RedIsUncertainPredictor(), OOD, ["a", "a"])


def test_ood_config_from_calibration_and_overrides():
    calibration = {"pixel_threshold": 0.3, "frame_threshold": 0.02, "false_alarm_rate": 0.01}
    assert OodConfig.from_calibration(calibration) == OodConfig(0.3, 0.02)
    got = OodConfig.from_calibration(calibration, pixel_threshold=math.nan, frame_threshold=0.1,
                                     raise_after=4)
    assert got == OodConfig(0.3, 0.1, raise_after=4)
    with pytest.raises(ConfigError, match=r"ood.frame_threshold: .*manifest has no OOD"):
        OodConfig.from_calibration({"pixel_threshold": 0.3, "frame_threshold": None})
    with pytest.raises(ConfigError, match=r"ood.pixel_threshold: invalid value -0.1"):
        OodConfig.from_calibration(calibration, pixel_threshold=-0.1)
    with pytest.raises(ConfigError, match=r"ood.clear_after: invalid value 0"):
        OodConfig(0.3, 0.1, clear_after=0)


def test_output_scale_shrinks_images_but_scores_at_full_size():
    import cv2

    predictor = RedIsUncertainPredictor()
    full = PerceptionCore(predictor, OOD, ["front"])
    half = PerceptionCore(predictor, OOD, ["front"], output_scale=0.5)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 100, 3), dtype=np.uint8)
    reference = full.process({"front": image})["front"]
    scaled = half.process({"front": image})["front"]
    assert scaled.labels.shape == scaled.uncertainty.shape == (32, 50)
    np.testing.assert_array_equal(
        scaled.labels, cv2.resize(reference.labels, (50, 32), interpolation=cv2.INTER_NEAREST))
    blocks = reference.uncertainty.reshape(32, 2, 50, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(scaled.uncertainty, blocks, atol=1e-6)  # area average
    np.testing.assert_array_equal(scaled.confidence, confidence_image(scaled.uncertainty))
    assert scaled.ood_score == reference.ood_score
    with pytest.raises(ValueError, match=r"output_scale must be in \(0, 1\], got 0"):
        PerceptionCore(predictor, OOD, ["front"], output_scale=0.0)


def test_confidence_is_computed_only_when_asked_for():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["front"])
    result = core.process({"front": frame(4, 6, 0.5)})["front"]
    assert "confidence" not in vars(result)
    assert result.confidence.tolist()[0][0] == 0 and "confidence" in vars(result)

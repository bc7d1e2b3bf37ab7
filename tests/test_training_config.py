"""Typed run configs: YAML + overrides, errors naming the key, before any data is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from training_toy import ToyConfig, ToyTask  # noqa: E402

from plip.errors import ConfigError  # noqa: E402
from plip.training.cli import main as training_main  # noqa: E402
from plip.training.config import (  # noqa: E402
    RunConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_in_file_is_named_with_suggestion(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, cfg)
    msg = str(err.value)
    assert "'optim.lrr'" in msg and "'optim.lr'" in msg and "c.yaml" in msg


def test_unknown_section_and_override_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'trian'.*did you mean 'train'"):
        load_config(RunConfig, None, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match=r"'train\.epoch'.*'train\.epochs'"):
        load_config(RunConfig, None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"'train\.epochs\.x'"):
        load_config(RunConfig, None, ["train.epochs.x=3"])


def test_wrong_type_names_key_type_and_value(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"train": {"epochs": "ten"}})
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, cfg)
    msg = str(err.value)
    assert "'train.epochs'" in msg and "expects int" in msg and "'ten'" in msg
    with pytest.raises(ConfigError, match=r"'train\.batch_size' expects int, got 3\.5"):
        load_config(RunConfig, None, ["train.batch_size=3.5"])
    with pytest.raises(ConfigError, match=r"'logging\.jsonl' expects bool"):
        load_config(RunConfig, None, ["logging.jsonl=maybe"])
    with pytest.raises(ConfigError, match=r"'schedule\.milestones\[1\]' expects int"):
        load_config(RunConfig, None, ["schedule.milestones=[3,x]", "train.epochs=9"])
    with pytest.raises(ConfigError, match=r"'optim\.name' must be one of .*did you mean 'adam'"):
        load_config(RunConfig, None, ["optim.name=adamm"])


def test_override_values_are_parsed_by_field_type():
    cfg = load_config(RunConfig, None, [
        "optim.lr=1e-3",  # YAML 1.1 would read this as a string
        "data.root=2024",  # a str field keeps the text
        "schedule.milestones=[30,50]",
        "train.epochs=60",
        "train.clip_grad_norm=null",
        "optim.lr_mult.text.encoder=0.1",  # dict field: the rest of the path is the key
        "optim.name=adan",
        "optim.betas=0.98,0.92,0.99",
        "data.image_size=[384,128]",
    ])
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.data.root == "2024"
    assert cfg.schedule.milestones == [30, 50]
    assert cfg.train.clip_grad_norm is None
    assert cfg.optim.lr_mult == {"text.encoder": 0.1}
    assert cfg.optim.betas == (0.98, 0.92, 0.99)
    assert cfg.data.image_size == (384, 128)


def test_overrides_win_over_file(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"train": {"epochs": 5, "batch_size": 16}})
    cfg = load_config(RunConfig, path, ["train.epochs=7"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (7, 16)
    raw = apply_overrides({"train": {"epochs": 5}}, ["train.seed=3"], RunConfig)
    assert raw == {"train": {"epochs": 5, "seed": 3}}


def test_cross_field_rules_name_the_key():
    with pytest.raises(ConfigError, match=r"'train\.batch_size' \(30\) must be a multiple of sampler\.num_instances"):
        load_config(RunConfig, None, ["train.batch_size=30"])
    with pytest.raises(ConfigError, match=r"'schedule\.milestones' must be strictly increasing"):
        load_config(RunConfig, None, ["schedule.milestones=[20,5]"])
    with pytest.raises(ConfigError, match=r"'optim\.betas' needs 3 values for adan"):
        load_config(RunConfig, None, ["optim.name=adan", "optim.betas=[0.9,0.99]"])
    with pytest.raises(ConfigError, match=r"'optim\.lr' must be > 0"):
        load_config(RunConfig, None, ["optim.lr=0"])


def test_task_subclass_sections_and_round_trip(tmp_path):
    """A task's RunConfig subclass adds fields; the saved YAML loads back to the same config."""
    cfg = load_config(ToyConfig, None, ["model.dropout=0.2", "data.per_id=[3,5]"])
    assert cfg.model.dropout == 0.2 and cfg.data.per_id == [3, 5]
    with pytest.raises(ConfigError, match=r"'model\.dropout'"):
        load_config(RunConfig, None, ["model.dropout=0.2"])  # the base config has no such key
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(ToyConfig, tmp_path / "saved.yaml")
    assert again == cfg and config_to_dict(again) == config_to_dict(cfg)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("override, key", [
    ("model.dropuot=0.1", "model.dropuot"),
    ("train.epochs=abc", "train.epochs"),
    ("train.amp=fp16", "train.amp"),  # only detectable on the machine: fp16 needs CUDA
    ("logging.tensorboard=true", "logging.tensorboard"),  # needs the tensorboard package
])
def test_cli_config_errors_happen_before_data_loading(tmp_path, capsys, monkeypatch, override, key):
    """`plip train` exits with code 2 and a one-line reason naming the key; no data was built."""
    monkeypatch.setattr(ToyTask, "data_built", 0)
    if key == "train.amp" and __import__("torch").cuda.is_available():
        pytest.skip("fp16 is valid with CUDA")
    if key == "logging.tensorboard" and _has("tensorboard"):
        pytest.skip("tensorboard is installed")
    code = training_main(["training_toy:ToyTask", override, f"output_dir={tmp_path / 'run'}",
                          "logging.progress=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err
    assert ToyTask.data_built == 0


def test_print_config(capsys):
    assert training_main(["training_toy:ToyTask", "--print-config", "train.epochs=4", "model.hidden=5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["epochs"] == 4 and printed["model"]["hidden"] == 5


def test_unknown_task_is_named(capsys):
    assert training_main(["no-such-task"]) == 2
    assert "no-such-task" in capsys.readouterr().err

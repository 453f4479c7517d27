"""The accelerate configs in configs/accelerate/ parse and resolve to the engines they promise (FSDP2, ZeRO-2/3, DDP)."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "accelerate").glob("*.yaml"))


def _resolved(path: Path):
    """The launch arguments accelerate derives from a config file (what `accelerate launch --config_file` uses)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _, _ = _validate_launch_command(args)
    return args


def test_the_expected_configs_exist():
    assert {p.name for p in CONFIGS} >= {"multi_gpu.yaml", "fsdp2.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml",
                                         "multi_node_fsdp2.yaml", "multi_node_deepspeed_zero3.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_resolves(path):
    from accelerate.utils.launch import prepare_multi_gpu_env

    text = path.read_text()
    assert "accelerate launch" in text  # each file documents its launch command
    args = _resolved(path)
    assert args.mixed_precision == "bf16" and not args.cpu
    assert args.num_processes % args.num_machines == 0
    if path.name.startswith("multi_node"):
        assert args.num_machines == 2 and args.main_process_ip and args.main_process_port
    else:
        assert args.num_machines == 1
    if "fsdp" in path.name:
        env = prepare_multi_gpu_env(args)
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
        assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"  # the final save is a plain checkpoint
    elif "deepspeed" in path.name:
        assert args.use_deepspeed
        stage = 3 if "zero3" in path.name else 2
        assert int(args.zero_stage) == stage
        if stage == 3:
            assert str(args.zero3_save_16bit_model).lower() == "true" and str(args.zero3_init_flag).lower() == "true"
    else:
        assert args.multi_gpu and not args.use_deepspeed and not args.use_fsdp

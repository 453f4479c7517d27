"""Pushing an export to the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path

from asru.core.errors import AsruError

LOG = logging.getLogger("asru.export")


def push_export(lm, out_dir: Path, repo: str, *, private: bool = True, max_shard_size: str = "5GB") -> None:
    """Push a verified export to the hub: the model and processor via ``push_to_hub``, then the model card."""
    message = "Upload unlearned model exported by asru"
    try:
        lm.model.push_to_hub(repo, private=private, max_shard_size=max_shard_size, commit_message=message)
        lm.processor.push_to_hub(repo, private=private, commit_message=message)
        from huggingface_hub import HfApi

        api = HfApi()
        api.upload_file(path_or_fileobj=str(out_dir / "README.md"), path_in_repo="README.md", repo_id=repo, commit_message=message)
        if (out_dir / "steering").is_dir():
            api.upload_folder(folder_path=str(out_dir / "steering"), path_in_repo="steering", repo_id=repo, commit_message=message)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AsruError(f"cannot push to the hub repo {repo} ({first}): log in with `hf auth login` and check write access; "
                        f"the local export in {out_dir} is complete") from None
    LOG.info("pushed %s to the hub as %s", out_dir, repo)

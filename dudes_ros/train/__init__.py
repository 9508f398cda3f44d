"""DUDES training: Deep Ensemble teacher members, then the distilled student.

Entry points (the same under ``torchrun``, which adds DistributedDataParallel):

- ``dudes train-teacher --recipe R --member-index I --out D``: member ``I`` (seed
  ``recipe.seed + I``) into ``D/member-II/{last,best}.pt``; one process per member, so members
  can run on different GPUs or machines.
- ``dudes train-student --recipe R --out D [--teacher PATHS|GLOBS]``: the student against the
  frozen members (default ``D/member-00/best.pt`` .. for the recipe's M >= 2 members) into
  ``D/student/{last,best}.pt``.

Both take overrides of the recipe keys a quick run changes (``--members``, ``--image-size``,
``--crop-size``, ``--epochs``, ``--batch-size``, ``--max-steps``) and save the effective recipe
as ``recipe.yaml`` beside the checkpoints. ``last.pt`` holds the optimizer, scheduler and RNG
states for resuming; ``best.pt`` only the weights and metadata.
- ``train_member(recipe, index, out_dir)`` / ``train_student(recipe, member_paths, out_dir)``
  from Python (``dudes_ros.train.teacher`` / ``.student``), with ``load_recipe(name_or_path)``
  from ``dudes_ros.train.recipes``.

Recipes live in ``config/recipes/`` (``cityscapes``: the paper's; ``synthetic``: small, CPU
sized). Re-running a command in the same ``--out`` resumes from ``last.pt``; ``--restart``
starts over.
"""

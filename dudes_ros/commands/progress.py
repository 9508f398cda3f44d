"""The progress display of the commands that build engines and variants (``dudes build-engine``,
``dudes make-variant``): a ``runtime.engine_cache.Progress`` drawn as tqdm bars on stderr. The
runtime itself only logs its progress, as the node wants."""

from __future__ import annotations

from tqdm import tqdm


class TqdmProgress:
    """A ``Progress`` that draws one tqdm bar per build phase (nested phases stack)."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, step: int, total: int) -> None:
        if step == 0:
            self.bars[phase] = tqdm(total=total or None, desc=phase, leave=False,
                                    position=len(self.bars))
        elif step < 0:
            bar = self.bars.pop(phase, None)
            if bar is not None:
                bar.close()
        elif phase in self.bars:
            bar = self.bars[phase]
            bar.update(step - bar.n)

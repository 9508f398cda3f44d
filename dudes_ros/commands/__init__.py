"""One module per ``dudes`` subcommand (``dudes process-bag`` is ``commands/process_bag.py``).

Each module is thin: ``add_arguments(parser)`` declares the subcommand's options and
``run(args) -> int`` turns the parsed arguments into the library's own types and calls one
library function; the work itself lives in the library packages (``bag/``, ``train/``,
``export/``, ``demo/``, ...), which never import from here. ``dudes_ros.cli`` imports a
module only when its subcommand runs, so ``dudes --help`` stays fast. Two modules are no
subcommand but what several share: ``progress.py`` (the tqdm display of build-engine and
make-variant) and ``training_options.py`` (the options of train-teacher and train-student).
"""

"""The subcommands of ``ape-nas``: each module owns its arguments next to its ``run``.

A module exposes one :class:`~ape_nas.commands.common.Command` per subcommand (name, help, ``arguments``,
``run``); ``ape_nas.cli`` lists them in the order ``ape-nas --help`` shows. Modules import only argparse and
the standard library at the top: everything heavy is imported inside ``run``, so ``--help`` stays fast.
"""

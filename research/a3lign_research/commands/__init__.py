"""The research wing's subcommands, one module each, with the product's command interface: `HELP`,
`add_arguments(parser)` and `run(args)` (`a3lign_dfer.commands`)."""

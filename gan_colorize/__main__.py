from gan_colorize.cli import entry

entry()

"""The click layer of mapdiff (installed as the ``mapdiff_cli`` package): flags to config, paths to io."""

"""The Flower app of a deployment: ``flwr run`` loads ``client_app`` on every SuperNode and ``server_app``
on the SuperLink (``[tool.flwr.app.components]`` of the folder ``fastmri-zoo federate RECIPE --app-dir DIR``
writes). The recipe comes from the run config (``recipe``, ``out-dir``); each SuperNode says which site it
is and where its data is in its node config (``site``, ``data-dir``). See ``docs/federated.md``."""

from .flower import flower_apps

client_app, server_app = flower_apps()

__all__ = ["client_app", "server_app"]

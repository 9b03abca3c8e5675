"""fastmri-zoo: deep-learning MRI reconstruction networks, loadable by name."""

__version__ = "0.1.0"

"""vacc-deploy: super-resolution networks from PyTorch to the Vastai VACC accelerator.

Importing this package is cheap: it imports neither torch nor any vendor SDK. Heavy modules are
imported by the stage that needs them (torch only for building and exporting models).
"""

__version__ = "0.1.0"

"""``python -m vacc_deploy`` = the ``vacc-deploy`` command."""

import sys

from vacc_deploy.cli import main

sys.exit(main())

"""Reports: ``report.md`` and a self-contained ``report.html`` for one run, and a compare page for
several. Torch-free. Inputs: :class:`~vacc_deploy.report.model.ReportData`."""

from vacc_deploy.report.model import BuildInfo, CropSet, ReportData, StageInfo

__all__ = ["BuildInfo", "CropSet", "ReportData", "StageInfo"]

"""What jobs cost and where they went: accounting, the HTML report, metrics, calibration."""

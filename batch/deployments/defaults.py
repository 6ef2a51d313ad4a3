"""The effort settings' defaults, apart from the computation so the CLI's parser loads no pandas."""

GAP_DAYS = 2.0  # a stretch this long without a single picture is not effort
INDEPENDENCE_MIN = 30.0  # minutes between two counted detections of a species at one deployment
OCCASION_DAYS = 7  # days per occasion of a detection history

"""Recording: schedules, name selection, statistics, the recorder core."""

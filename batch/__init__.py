"""The archive door: Ray Data reprocessing jobs that write Parquet detection tables."""

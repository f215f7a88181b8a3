"""The record contract, the journal and its views, job dirs, the study's old files, collecting records."""

"""Jobs: the registry the job API feeds, process and cgroup tracking, per-job totals."""

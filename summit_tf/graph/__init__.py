"""Attribution graphs from aggregates: personalized PageRank, pruning, exports."""

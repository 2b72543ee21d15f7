"""The four Fairshare services. None imports another; they meet only on Kafka."""

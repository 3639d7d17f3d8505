"""The post-deployment loop: prediction log, feedback, live accuracy, drift, traffic simulation."""

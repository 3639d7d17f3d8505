"""The data stage: validate, normalise, de-duplicate and split photos into a versioned data set."""

"""The data stage: validate, normalise, de-duplicate and split photos into a versioned data set.

Readers of any class-folder data set (evaluation, tests) take a photo's class from its folder
with `catdog.data.sources.label_for_path`, as the stage itself does.
"""

"""Running stages as AWS Batch array jobs: which rows or tiles a shard owns (:mod:`.shards`),
the shard outputs and their merge (:mod:`.parts`), and the container's entry point with a local
runner that starts an array job's processes as Batch would (:mod:`.batch`).

The stages know nothing of this: a stage function takes frames and returns frames; this layer
hands a shard its frames and labels what it wrote.
"""

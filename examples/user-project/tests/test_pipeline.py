"""The pipeline's tests. The integration tests use batchbox's pytest plugin (installed with batchbox):

- ``batchbox_local`` starts (or reuses) the local Batch emulator and Azurite for the session and gives clients;
- ``batchbox_names`` gives unique names and deletes what the test created under them, even when it fails.

``pytest`` runs them locally; ``pytest --batchbox-backend=azure`` runs the same tests on Azure Batch.
"""

from wordcount_pipeline import PipelineNames, count_words_locally, run_pipeline

TEXTS = {
    "tide.txt": "The tide comes in. The tide goes out.",
    "bread.txt": "Bread rises; the oven waits.",
}


def test_local_count_is_the_reference() -> None:
    assert count_words_locally(TEXTS)["the"] == 3
    assert count_words_locally(TEXTS)["tide"] == 2


def test_pipeline_counts_words_on_batch(batchbox_local, batchbox_names) -> None:
    names = PipelineNames(
        pool_id=batchbox_names.pool_id(),
        job_id=batchbox_names.job_id(),
        input_container=batchbox_names.container("in"),
        output_container=batchbox_names.container("out"),
    )
    counts = run_pipeline(batchbox_local.batch_client(), batchbox_local.blob_service_client(), names, TEXTS)
    assert counts == count_words_locally(TEXTS)


def test_pipeline_stages_texts_and_scripts(batchbox_local, batchbox_names) -> None:
    blobs = batchbox_local.blob_service_client()
    names = PipelineNames(
        pool_id=batchbox_names.pool_id(),
        job_id=batchbox_names.job_id(),
        input_container=batchbox_names.container("in"),
        output_container=batchbox_names.container("out"),
    )
    run_pipeline(batchbox_local.batch_client(), blobs, names, {"one.txt": "one word"})
    staged = sorted(blob.name for blob in blobs.get_container_client(names.input_container).list_blobs())
    assert staged == ["scripts/count.py", "scripts/merge.py", "texts/one.txt"]
    outputs = sorted(blob.name for blob in blobs.get_container_client(names.output_container).list_blobs())
    assert outputs == ["counts/count-0.json", "total.json"]

"""Count the words of some texts on Azure Batch: upload, count on the nodes, merge."""

from wordcount_pipeline.pipeline import PipelineError, PipelineNames, count_words_locally, run_pipeline

__all__ = ["PipelineError", "PipelineNames", "count_words_locally", "run_pipeline"]

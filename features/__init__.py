"""Feature tables over a world (offline) and the same definitions online.

build.build_features(W) -> W/features/; online.OnlineFeatures / online.ModelInputs for serving;
embeddings.PostEmbedder for the test model's text pipeline.
"""

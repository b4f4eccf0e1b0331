"""The framework gallery: policy-gradient losses as training loops write them, each with pgverify's verdict."""

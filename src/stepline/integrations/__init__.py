"""Framework integrations: each module translates one framework's events into core calls.

    from stepline.integrations.transformers import SteplineCallback   # Hugging Face Trainer
    from stepline.integrations.lightning import SteplineLogger        # Lightning
    from stepline.integrations.keras import SteplineCallback          # Keras 3
"""

"""summit-tf: SUMMIT (Hohman et al., VAST 2019) activation and attribution summaries in TensorFlow 2."""

from setuptools import find_packages, setup

setup(
    name="summit-tf",
    version="0.1.0",
    description="Per-class activation and attribution summaries of CNNs (SUMMIT) in TensorFlow 2",
    python_requires=">=3.11",
    packages=[*find_packages(include=["summit_tf", "summit_tf.*", "feature_vis", "experiments"]),
              "summit_tf.resources"],
    # The class list lives in the top-level data/ folder of the repository and ships inside the package.
    package_dir={"summit_tf.resources": "data"},
    package_data={
        "summit_tf.resources": ["*.tsv", "*.txt", "*.json"],
        "summit_tf.viewer": ["static/*", "static/**/*"],
    },
    install_requires=[
        "numpy>=1.26",
        "h5py>=3.10",
        "igraph>=0.11",
        "absl-py>=2.0",
        "pillow>=10.0",
        "tensorflow-datasets>=4.9",
        "tflite>=2.18",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "umap-learn>=0.5.5",
        "numba>=0.59",
    ],
    extras_require={
        # Keras 3 arrived with TF 2.16, whose TFLite converter aborts on Keras 3 models; tested: 2.17, 2.21
        # (BUILD_NOTES.md).
        "cpu": ["tensorflow-cpu>=2.17,<3"],
        "gpu": ["tensorflow[and-cuda]>=2.17,<3"],
        "test": ["pytest>=8", "networkx>=3.2", "ruff>=0.6", "playwright>=1.45"],
    },
    entry_points={
        "console_scripts": [
            "summit-aggregate=summit_tf.aggregate:run",
            "summit-merge=summit_tf.merge:run",
            "summit-graph=summit_tf.graph:run",
            "summit-serve=summit_tf.serve:run",
        ]
    },
)

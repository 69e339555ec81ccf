"""The model-from-code file MLflow executes to build the pyfunc wrapper (never imported by Tailor).

`tailor.training.registration.log_model` passes this file's path
(`tailor.registry.pyfunc.PYFUNC_CODE`) as `python_model`, so MLflow stores code rather than
a cloudpickle of the class. Reads and writes nothing itself.
"""

from mlflow.models import set_model

from tailor.registry.pyfunc import TailorModel

set_model(TailorModel())

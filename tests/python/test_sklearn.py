"""chainrule.sklearn: scikit-learn's estimator checks, meta-estimators, and agreement with
scikit-learn's own MLPClassifier / MLPRegressor (trajectories, accuracy)."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Checks excluded, with the reason (kept short; docs/sklearn.md lists the same).
_FLOAT32 = ("float32 (the default dtype) agrees to ~2e-7; the check compares at rtol=1e-7. "
            "test_sample_weight_equivalence_float64 runs it on float64 estimators")
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": _FLOAT32,
    "check_sample_weight_equivalence_on_sparse_data": _FLOAT32,
}


def _small(est):
    return est.set_params(max_iter=100)


@parametrize_with_checks([_small(MLPClassifier(random_state=0)),
                          _small(MLPRegressor(random_state=0))],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("est", [MLPClassifier(dtype="float64", max_iter=100, random_state=0),
                                 MLPRegressor(dtype="float64", max_iter=100, random_state=0)],
                         ids=["classifier", "regressor"])
def test_sample_weight_equivalence_float64(est):
    from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,
                                                check_sample_weight_equivalence_on_sparse_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(type(est).__name__, est)
        check_sample_weight_equivalence_on_sparse_data(type(est).__name__, est)


# ----- exact agreement with scikit-learn in float64 -----------------------------------------
def _pair(cls_cr, cls_sk, **params):
    return cls_cr(dtype="float64", **params), cls_sk(**params)


def _assert_same_fit(ours, theirs, exact=True, loss_rtol=1e-6):
    """exact: same weights to rounding (SGD); else (Adam, whose eps scikit-learn adds before
    the bias correction and torch after) the same loss curve to 1e-2 and predictions."""
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_,
                               rtol=loss_rtol if exact else 1e-2)
    if exact:
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


CASES = [
    dict(solver="sgd", learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=True),
    dict(solver="sgd", learning_rate_init=0.05, momentum=0.5, nesterovs_momentum=False,
         learning_rate="invscaling", power_t=0.3),
    dict(solver="sgd", learning_rate_init=0.05, learning_rate="adaptive", tol=0.5,
         n_iter_no_change=1),
    dict(solver="adam", learning_rate_init=0.01),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
    dict(solver="sgd", learning_rate_init=0.05, batch_size=37, shuffle=False, alpha=0.1),
]


@pytest.mark.parametrize("params", CASES)
def test_classifier_trajectory_matches_sklearn(params):
    X, y = load_digits(return_X_y=True)
    X = X[:600] / 16.0
    y = y[:600]
    params = dict(hidden_layer_sizes=(20,), max_iter=8, random_state=3, **params)
    ours, theirs = _pair(MLPClassifier, sk_nn.MLPClassifier, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    # The L2 part of loss_ is interpolated within an epoch (exact for the weights): alpha=0.1
    # shows it, the default alpha=1e-4 does not.
    _assert_same_fit(ours, theirs, exact=params["solver"] == "sgd",
                     loss_rtol=1e-2 if params.get("alpha") else 1e-6)
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert len(ours.validation_loss_curve_) == ours.n_iter_
    assert np.mean(ours.predict(X) == theirs.predict(X)) > 0.98


@pytest.mark.parametrize("target", ["binary", "multilabel"])
def test_binary_and_multilabel_match_sklearn(target):
    X, y = make_classification(200, 10, n_informative=6, random_state=0)
    if target == "multilabel":
        y = np.stack([y, (X[:, 0] > 0).astype(int), (X[:, 1] > 0.5).astype(int)], axis=1)
    params = dict(hidden_layer_sizes=(7, 5), activation="tanh", solver="sgd",
                  learning_rate_init=0.1, max_iter=5, batch_size=32, random_state=1)
    ours, theirs = _pair(MLPClassifier, sk_nn.MLPClassifier, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    _assert_same_fit(ours, theirs)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_regressor_matches_sklearn(solver):
    X, y = make_regression(150, 6, n_targets=2, noise=0.1, random_state=0)
    y = y / 100
    params = dict(hidden_layer_sizes=(9,), activation="logistic", solver=solver,
                  learning_rate_init=0.01, max_iter=6, batch_size=40, random_state=2)
    ours, theirs = _pair(MLPRegressor, sk_nn.MLPRegressor, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    _assert_same_fit(ours, theirs, exact=solver == "sgd")
    assert ours.out_activation_ == "identity"


@pytest.mark.parametrize("cls,task", [(MLPClassifier, "multiclass"),
                                      (MLPClassifier, "binary"), (MLPRegressor, "regression")])
def test_sample_weight_matches_sklearn(cls, task):
    rng = np.random.default_rng(0)
    if task == "regression":
        X, y = make_regression(120, 5, noise=0.1, random_state=0)
        y = y / 100
    else:
        X, y = make_classification(120, 6, n_informative=4, n_classes=3 if task == "multiclass"
                                   else 2, random_state=0)
    w = rng.uniform(0, 3, len(y))
    sk_cls = sk_nn.MLPClassifier if cls is MLPClassifier else sk_nn.MLPRegressor
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.02, max_iter=4,
                  batch_size=32, alpha=0.01, random_state=0)
    ours, theirs = _pair(cls, sk_cls, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
    _assert_same_fit(ours, theirs)


def test_lbfgs_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    params = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=30, random_state=0)
    ours, theirs = _pair(MLPClassifier, sk_nn.MLPClassifier, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)


def test_partial_fit_and_warm_start_match_sklearn():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    classes = np.unique(y)
    ours, theirs = _pair(MLPClassifier, sk_nn.MLPClassifier, hidden_layer_sizes=(12,),
                         solver="sgd", learning_rate_init=0.05, random_state=0)
    for _ in range(3):
        ours.partial_fit(X, y, classes=classes)
        theirs.partial_fit(X, y, classes=classes)
    _assert_same_fit(ours, theirs)
    with pytest.raises(AttributeError):
        MLPClassifier(solver="lbfgs").partial_fit
    ours, theirs = _pair(MLPClassifier, sk_nn.MLPClassifier, hidden_layer_sizes=(12,),
                         solver="adam", max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            ours.fit(X, y)
            theirs.fit(X, y)
    _assert_same_fit(ours, theirs, exact=False)


# ----- scikit-learn machinery -------------------------------------------------------------
def test_pipeline_grid_search_cross_val_and_clone():
    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=30,
                                                         learning_rate_init=0.01,
                                                         random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        assert scores.mean() > 0.85
        grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert grid.best_score_ > 0.8
    est = MLPRegressor(hidden_layer_sizes=(5, 3), dropout=0.1, n_threads=1, dtype="float64")
    twin = clone(est)
    assert twin.get_params() == est.get_params()


def test_extras_pickle_to_model_and_dropout():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=15, early_stopping=True,
                        dropout=0.1, n_threads=1, random_state=0).fit(X, y)
    assert est.coefs_[0].dtype == np.float32
    assert len(est.validation_loss_curve_) == est.n_iter_ == len(est.validation_scores_)
    best = int(np.argmax(est.validation_scores_))
    assert est.best_validation_score_ == est.validation_scores_[best]
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.partial_fit if est.solver == "adam" else None  # noqa: B018
    model = est.to_model()
    assert isinstance(model, cr.Sequential)
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(model.predict(X), np.searchsorted(est.classes_, est.predict(X)))
    # the model is independent of the estimator
    model.layers[0].W = 0.0
    assert np.abs(est.coefs_[0]).sum() > 0


def test_restore_best_weights_false_keeps_last_epoch():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    kw = dict(hidden_layer_sizes=(16,), max_iter=30, early_stopping=True, n_iter_no_change=2,
              tol=0.5, random_state=0)
    last = MLPClassifier(restore_best_weights=False, **kw).fit(X, y)
    best = MLPClassifier(**kw).fit(X, y)
    assert last.n_iter_ == best.n_iter_
    # with restore the validation score of the final weights is the best one
    assert not all(np.array_equal(a, b) for a, b in zip(last.coefs_, best.coefs_))


def test_import_without_sklearn_says_how_to_install(tmp_path):
    blocker = tmp_path / "sklearn.py"
    blocker.write_text("raise ImportError('no scikit-learn here')\n")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "try:\n    import chainrule.sklearn\nexcept ImportError as e:\n    print(e)\n"
            % str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(tmp_path))
    assert "pip install chainrule[sklearn]" in out.stdout, out.stderr


# ----- accuracy against scikit-learn (the "within 1 point") --------------------------
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_digits_accuracy_within_one_point(solver):
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=60, random_state=0,
                  learning_rate_init=0.05 if solver == "sgd" else 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
        theirs = sk_nn.MLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mnist_accuracy_within_one_point(data_dir, solver):
    (X, y), (Xt, yt) = cr.datasets.load_mnist(data_dir / "mnist")
    X, y = X[:10000], y[:10000]
    params = dict(hidden_layer_sizes=(100,), solver=solver, max_iter=5, random_state=0,
                  learning_rate_init=0.05 if solver == "sgd" else 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(X, y).score(Xt, yt)
        theirs = sk_nn.MLPClassifier(**params).fit(X.astype(np.float64), y).score(Xt, yt)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_in_order_equals_fit_on_the_shuffled_copy(dtype):
    # The estimators train each epoch over the rows in scikit-learn's shuffled order without
    # copying them (Sequential._train_in_order): the full batches and the shorter last one,
    # each with its own l2, must take the same steps as fit on X[order] in order.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(203, 7)).astype(dtype)
    y = rng.integers(0, 3, 203)
    order = rng.permutation(203)

    def model():
        return cr.Sequential([cr.Dense(7, 11), cr.Dense(11, 3)], dtype=dtype, seed=2,
                             optimizer=cr.optimizers.Adam(lr=0.01))

    copied, in_place = model(), model()
    for epoch in range(3):
        copied.fit(X[order][:200], y[order][:200], epochs=1, batch_size=40, shuffle=False,
                   verbose=0, l2=0.01)
        copied.fit(X[order][200:], y[order][200:], epochs=1, batch_size=3, shuffle=False,
                   verbose=0, l2=0.1)
        Xm, Ym = in_place._features(X), in_place._targets(y, 203)
        full = in_place._train_in_order(Xm, Ym, order, 40, 0, 5, 0.01, 0.01)
        last = in_place._train_in_order(Xm, Ym, order, 40, 5, 1, 0.01, 0.1)
        assert full > 0 and last > 0
    np.testing.assert_array_equal(in_place._net.params, copied._net.params)
    assert not np.array_equal(in_place._net.params, model()._net.params)  # it did train


def test_regressor_takes_sklearns_loss_parameter():
    assert MLPRegressor().get_params()["loss"] == "squared_error"
    X, y = make_regression(n_samples=60, n_features=4, random_state=0)
    with pytest.raises(NotImplementedError, match=r"loss='poisson'\) is not available"):
        MLPRegressor(loss="poisson").fit(X, y)
    with pytest.raises(ValueError, match="'loss' parameter of MLPRegressor"):
        MLPRegressor(loss="absolute").fit(X, y)


def test_divergence_raises_sklearns_error_with_consistent_state():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    y = X @ [1.0, 2.0, 3.0, 4.0] + rng.normal(size=100)
    est = MLPRegressor(hidden_layer_sizes=(7,), solver="sgd", learning_rate_init=10.0,
                       random_state=1, max_iter=25)
    with pytest.raises(ValueError, match=r"non-finite parameter weights.*in epoch 4\b"):
        est.fit(X, y)
    # the weights of the last finite step: three epochs trained, and counted
    assert est.n_iter_ == len(est.loss_curve_) == 3
    assert all(np.isfinite(W).all() for W in est.coefs_)
    assert np.array_equal(est.predict(X), MLPRegressor(**est.get_params()).set_params(
        max_iter=3).fit(X, y).predict(X))


@pytest.mark.parametrize("change", [{"activation": "tanh"}, {"dtype": "float64"},
                                    {"dropout": 0.5}])
def test_set_params_after_fit_acts_as_on_a_pickled_copy(change):
    """The core model is built from activation, dtype and dropout: changed after fit, they
    take effect (predict, warm_start) as they would on an unpickled copy, which builds anew."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
        est.set_params(**change)
        copy = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(est.predict_proba(X), copy.predict_proba(X))
        est.set_params(warm_start=True).fit(X, y)
        copy.set_params(warm_start=True).fit(X, y)
    for a, b in zip(est.coefs_, copy.coefs_):
        np.testing.assert_array_equal(a, b)
    assert est.coefs_[0].dtype == np.dtype(est.dtype)

"""The testing layer: public Hypothesis strategies of MDPs, policies and problems (``strategies``) and the search for
the smallest counterexample to a claim about an estimator (``fuzz``). Imports the layers below; never prints."""

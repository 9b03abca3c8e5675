"""Differentiable architecture search of the cells of an unrolled network (Yan et al. 2020, NAS for CS-MRI).

- ``darts``: first-order DARTS and MiLeNAS on any model whose prior holds search cells
  (``models.NasNet`` with ``genotype=None``): one step over a training and a validation batch
  (:class:`ArchitectureSearch`, separate optimisers for w and alpha; the federated search calls
  it per client), and the whole search (:func:`search`) with alpha, the softmax entropy and the
  genotype per epoch, stopping when the genotype settles.
- ``outputs``: ``genotype.json``, ``alpha_history.csv``, ``cell.png`` (:func:`draw_cell`) and
  ``history.png`` (:func:`draw_search_history`).
- ``recipe``: ``fastmri-zoo search RECIPE.json --data DIR -o OUT_DIR``, a training recipe with a
  ``search`` block; the searched network is then retrained by the one trainer
  (``NasNet(genotype=...)`` in a training recipe).

A folder of its own rather than ``training/``: it drives the trainer's data and losses with two
optimisers and splits of its own, downstream of ``training``.
"""

from . import darts, outputs, recipe
from .darts import ARCHITECTURE_OPTIMIZER, METHODS, ArchitectureSearch, EpochRecord, SearchResult, search, softmax_entropy
from .outputs import (alpha_columns, draw_cell, draw_search_history, genotype_changes, genotype_summary,
                      read_alpha_history, save_cell_png, save_search_history_png, write_alpha_history, write_genotype,
                      write_json, write_text)
from .recipe import (OUTPUT_FILES, SearchOptions, SearchRecipe, check_search_options, load_search_recipe,
                     run_search_recipe)

__all__ = [*darts.__all__, *outputs.__all__, *recipe.__all__]

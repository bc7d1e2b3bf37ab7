"""The training tasks shipped with plip; importing this package registers each of them.

Every module registers its task at the definition (``@register_task("name")``) and keeps its
downstream imports (timm, the downstream models) inside the methods, so importing the
package stays light. A new task is one module here (plus its recipe in ``recipes/``) and one
import line below.
"""

from . import bot, finetune, mgn, par, pretrain  # noqa: F401  (each registers itself)

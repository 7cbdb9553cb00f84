"""Find the op chains a deployment compiler fuses into one kernel.

A chain starts at a conv or linear op and takes, one after the other, the sole consumer of the
running tensor while it is a batch norm (folded into the weights; at most one, right after the head),
an activation, or an element-wise op (a residual add, a layer-scale multiply). The fused kernel reads
the chain's external inputs once and writes only its last output: the intermediate tensors never reach
memory, and the batch norm's parameters disappear into the conv's weights.
"""

from __future__ import annotations

from chipfit.cost.graph import Graph
from chipfit.cost.records import OpNode

HEADS = {"conv", "linear"}
FOLLOWERS = {"act", "eltwise"}
MAX_FOLLOWERS = 4


def fusion_groups(graph: Graph) -> list[list[int]]:
    """Partition the non-view ops into execution units, in execution order.

    Returns:
        lists of node indices; a list of one index is an op executed alone.
    """
    consumers = _real_consumers(graph)
    output_buffers = {t.buffer for t in graph.outputs}
    taken: set[int] = set()
    groups: list[list[int]] = []
    nodes = graph.nodes
    for n in nodes:
        if n.op_type == "view" or n.idx in taken:
            continue
        group = [n.idx]
        taken.add(n.idx)
        if n.op_type in HEADS and n.supported:
            cur = n
            while len(group) <= MAX_FOLLOWERS:
                cons = consumers[cur.idx]
                if len(cons) != 1 or any(t.buffer in output_buffers for t in cur.outputs):
                    break
                nxt = nodes[cons[0]]
                if nxt.idx in taken or not _can_follow(nxt, cur, first=len(group) == 1):
                    break
                group.append(nxt.idx)
                taken.add(nxt.idx)
                cur = nxt
        groups.append(group)
    # A fused kernel runs once all its inputs exist, i.e. at its last op: a quadratic conv's conv_a + (x conv_b) +
    # conv_c chain must come after conv_b and conv_c.
    groups.sort(key=lambda g: g[-1])
    return groups


def _can_follow(nxt: OpNode, cur: OpNode, first: bool) -> bool:
    if nxt.kind == "batch_norm":
        return first
    return nxt.op_type in FOLLOWERS and nxt.supported and len(nxt.outputs) == 1


def _real_consumers(graph: Graph) -> dict[int, list[int]]:
    """node idx -> the non-view nodes that read its output (looking through views)."""
    cons = graph.consumers()
    nodes = graph.nodes
    out: dict[int, list[int]] = {}
    for n in nodes:
        seen: list[int] = []
        stack = list(cons[n.idx])
        visited: set[int] = set()
        while stack:
            c = stack.pop()
            if c in visited:
                continue
            visited.add(c)
            if nodes[c].op_type == "view":
                stack.extend(cons[c])
            else:
                seen.append(c)
        out[n.idx] = sorted(set(seen))
    return out

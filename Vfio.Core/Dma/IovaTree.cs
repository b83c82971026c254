// SPDX-License-Identifier: MIT

namespace Vfio.Core;

/// <summary>
/// An AVL tree of disjoint inclusive ranges keyed by their start, kept in an array-backed node pool (structs with
/// <see cref="int"/> child indices and a free list), so the steady state allocates nothing. Every node also holds
/// the largest extent (<c>last - start</c>, i.e. size - 1, which fits a <see cref="ulong"/> even for the whole
/// 64-bit space) in its subtree, so the lowest-address range of at least a given extent is found on one
/// root-to-leaf path.
/// </summary>
/// <remarks>
/// <para>
/// Every operation is O(log n): the height of an AVL tree of n nodes is below 1.44·log2(n + 2). The code is
/// iterative: each search records its root-to-node path, and <see cref="SetRange"/> and <see cref="RemoveFound"/>
/// act on a node the latest search returned by walking that path back up, stopping as soon as a subtree's height
/// and largest extent are unchanged. Node visits (one per node on a search path or re-summarised on the way back,
/// one per rotation) are counted in <see cref="Visits"/> for the allocator's operation-count tests.
/// </para>
/// <para>
/// Contract: the caller keeps the ranges disjoint; <see cref="SetRange"/> may move a node's bounds only where that
/// keeps the order of starts; <see cref="SetRange"/> and <see cref="RemoveFound"/> take a node returned by the
/// latest search of this tree (<see cref="SetRange"/> keeps that path valid; <see cref="Insert"/> and removal do
/// not, and removal may move another node's range into the removed node's slot). Not thread-safe.
/// </para>
/// </remarks>
internal sealed class IovaTree : IOrderedRanges
{
    /// <summary>The null node index; slot 0 of the pool is a sentinel of height 0 and extent 0, never written.</summary>
    public const int Nil = 0;

    // An AVL tree of fewer than 2^31 nodes is at most 45 high.
    private const int MaxHeight = 64;

    private readonly int[] _path = new int[MaxHeight];
    private int _pathLength;
    private Node[] _nodes;
    private int _root;
    private int _freeList;
    private int _highWater = 1;
    private int _count;
    private long _visits;

    public IovaTree(int capacity)
    {
        _nodes = new Node[Math.Max(capacity, 4) + 1];
    }

    /// <summary>Live ranges.</summary>
    public int Count => _count;

    /// <summary>Node visits and rotations since creation.</summary>
    public long Visits => _visits;

    /// <summary>The largest extent (size - 1) of any range; 0 when empty (check <see cref="IsEmpty"/>).</summary>
    public ulong MaxExtent => _nodes[_root].MaxExtent;

    /// <summary>True when the tree holds no range.</summary>
    public bool IsEmpty => _root == Nil;

    public ulong StartOf(int node) => _nodes[node].Start;

    public ulong LastOf(int node) => _nodes[node].Last;

    /// <summary>Grows the pool so that <paramref name="count"/> ranges fit without another allocation.</summary>
    public void EnsureCapacity(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count >= _nodes.Length)
        {
            Array.Resize(ref _nodes, (int)Math.Min(Math.Max((long)count + 1, 2L * _nodes.Length), Array.MaxLength));
        }
    }

    /// <summary>The range with the greatest start at or below <paramref name="key"/>, or <see cref="Nil"/>.</summary>
    public int Floor(ulong key)
    {
        Node[] nodes = _nodes;
        int[] path = _path;
        int depth = 0;
        int best = Nil;
        int n = _root;
        while (n != Nil)
        {
            path[depth++] = n;
            ref Node x = ref nodes[n];
            if (x.Start <= key)
            {
                best = n;
                if (x.Start == key)
                {
                    break;
                }
                n = x.Right;
            }
            else
            {
                n = x.Left;
            }
        }
        _pathLength = depth;
        _visits += depth;
        return best;
    }

    /// <summary>The range with the smallest start at or above <paramref name="key"/>, or <see cref="Nil"/>.</summary>
    public int Ceiling(ulong key)
    {
        Node[] nodes = _nodes;
        int[] path = _path;
        int depth = 0;
        int best = Nil;
        int n = _root;
        while (n != Nil)
        {
            path[depth++] = n;
            ref Node x = ref nodes[n];
            if (x.Start >= key)
            {
                best = n;
                if (x.Start == key)
                {
                    break;
                }
                n = x.Left;
            }
            else
            {
                n = x.Right;
            }
        }
        _pathLength = depth;
        _visits += depth;
        return best;
    }

    /// <summary>The range that starts at <paramref name="key"/>, or <see cref="Nil"/>.</summary>
    public int Find(ulong key)
    {
        int n = Floor(key);
        return n != Nil && _nodes[n].Start == key ? n : Nil;
    }

    /// <summary>
    /// On one path: the range with the greatest start below <paramref name="key"/> and the one with the smallest
    /// start above it (either may be <see cref="Nil"/>). <paramref name="key"/> must not be a start in the tree.
    /// </summary>
    public void Neighbours(ulong key, out int below, out int above)
    {
        Node[] nodes = _nodes;
        int[] path = _path;
        int depth = 0;
        below = Nil;
        above = Nil;
        int n = _root;
        while (n != Nil)
        {
            path[depth++] = n;
            ref Node x = ref nodes[n];
            if (x.Start < key)
            {
                below = n;
                n = x.Right;
            }
            else
            {
                above = n;
                n = x.Left;
            }
        }
        _pathLength = depth;
        _visits += depth;
    }

    /// <summary>
    /// The lowest-address range whose extent (size - 1) is at least <paramref name="extent"/>, or <see cref="Nil"/>:
    /// one descent, going left whenever the left subtree holds a long enough range.
    /// </summary>
    public int FirstFit(ulong extent)
    {
        Node[] nodes = _nodes;
        int[] path = _path;
        int depth = 0;
        int n = _root;
        if (n != Nil && nodes[n].MaxExtent >= extent)
        {
            while (true)
            {
                path[depth++] = n;
                ref Node x = ref nodes[n];
                if (x.Left != Nil && nodes[x.Left].MaxExtent >= extent)
                {
                    n = x.Left;
                }
                else if (x.Last - x.Start >= extent)
                {
                    break;
                }
                else
                {
                    // The subtree holds a long enough range and it is neither on the left nor here.
                    n = x.Right;
                }
            }
        }
        else
        {
            n = Nil;
        }
        _pathLength = depth;
        _visits += depth;
        return n;
    }

    /// <summary>
    /// The largest extent of the parts of ranges at or below <paramref name="limit"/> (each range clipped to it).
    /// </summary>
    /// <returns>False when no range starts at or below <paramref name="limit"/>.</returns>
    public bool TryGetMaxExtentAtOrBelow(ulong limit, out ulong extent)
    {
        Node[] nodes = _nodes;
        _pathLength = 0;
        bool any = false;
        extent = 0;
        int n = _root;
        while (n != Nil)
        {
            _visits++;
            ref Node x = ref nodes[n];
            if (x.Start <= limit)
            {
                // Everything on the left ends before x starts, so it lies below the limit, unclipped.
                if (x.Left != Nil)
                {
                    extent = Math.Max(extent, nodes[x.Left].MaxExtent);
                }
                extent = Math.Max(extent, Math.Min(x.Last, limit) - x.Start);
                any = true;
                n = x.Right;
            }
            else
            {
                n = x.Left;
            }
        }
        return any;
    }

    /// <summary>Adds <c>[start, last]</c>, which must not overlap a range already present.</summary>
    public void Insert(ulong start, ulong last)
    {
        // Take the node first: the pool may grow here and nowhere else.
        int node = NewNode(start, last);
        Node[] nodes = _nodes;
        int[] path = _path;
        int depth = 0;
        int n = _root;
        if (n == Nil)
        {
            _root = node;
        }
        else
        {
            while (true)
            {
                path[depth++] = n;
                ref Node x = ref nodes[n];
                if (start < x.Start)
                {
                    if (x.Left == Nil)
                    {
                        x.Left = node;
                        break;
                    }
                    n = x.Left;
                }
                else
                {
                    if (x.Right == Nil)
                    {
                        x.Right = node;
                        break;
                    }
                    n = x.Right;
                }
            }
            _visits += depth;
            FixUp(depth, depth - 1);
        }
        _count++;
        _pathLength = 0;
    }

    /// <summary>Removes the range that starts at <paramref name="start"/>.</summary>
    /// <returns>True when there was one; <paramref name="last"/> is its last address.</returns>
    public bool Remove(ulong start, out ulong last)
    {
        int node = Find(start);
        if (node == Nil)
        {
            last = 0;
            return false;
        }
        last = _nodes[node].Last;
        RemoveFound(node);
        return true;
    }

    /// <summary>Removes <paramref name="node"/>, which the latest search returned.</summary>
    public void RemoveFound(int node)
    {
        Node[] nodes = _nodes;
        int[] path = _path;
        int at = PathIndexOf(node);
        ref Node z = ref nodes[node];
        int freed;
        if (z.Left != Nil && z.Right != Nil)
        {
            // Two children: the right subtree's leftmost range moves into this node, and its slot is unlinked.
            int depth = at + 1;
            int successor = z.Right;
            while (nodes[successor].Left != Nil)
            {
                path[depth++] = successor;
                successor = nodes[successor].Left;
            }
            _visits += depth - at;
            ref Node s = ref nodes[successor];
            if (depth == at + 1)
            {
                z.Right = s.Right;
            }
            else
            {
                nodes[path[depth - 1]].Left = s.Right;
            }
            z.Start = s.Start;
            z.Last = s.Last;
            freed = successor;
            // This node's own range changed: re-summarise at least up to it.
            FixUp(depth, at);
        }
        else
        {
            Replace(at - 1, node, z.Left != Nil ? z.Left : z.Right);
            freed = node;
            FixUp(at, at - 1);
        }
        nodes[freed] = new Node { Left = _freeList };
        _freeList = freed;
        _count--;
        _pathLength = 0;
    }

    /// <summary>
    /// Moves the bounds of <paramref name="node"/>, which the latest search returned, to <c>[newStart, newLast]</c>;
    /// the caller guarantees they keep it disjoint from, and in the same order as, its neighbours. The search path
    /// stays valid.
    /// </summary>
    public void SetRange(int node, ulong newStart, ulong newLast)
    {
        int at = PathIndexOf(node);
        ref Node x = ref _nodes[node];
        x.Start = newStart;
        x.Last = newLast;
        FixUp(at + 1, at);
    }

    private int PathIndexOf(int node)
    {
        for (int i = _pathLength - 1; i >= 0; i--)
        {
            if (_path[i] == node)
            {
                return i;
            }
        }
        throw new InvalidOperationException("IOVA tree misuse: the node is not on the latest search path.");
    }

    private int NewNode(ulong start, ulong last)
    {
        int n;
        if (_freeList != Nil)
        {
            n = _freeList;
            _freeList = _nodes[n].Left;
        }
        else
        {
            if (_highWater == _nodes.Length)
            {
                EnsureCapacity(_nodes.Length);
            }
            n = _highWater++;
        }
        _nodes[n] = new Node { Start = start, Last = last, MaxExtent = last - start, Height = 1 };
        return n;
    }

    // Re-summarises and rebalances path[depth - 1] up to the root. Once a subtree's height and largest extent come
    // out as they were, nothing above can change, so it stops there, but not below path[mustReach], whose own range
    // changed.
    private void FixUp(int depth, int mustReach)
    {
        Node[] nodes = _nodes;
        for (int i = depth - 1; i >= 0; i--)
        {
            int n = _path[i];
            int oldHeight = nodes[n].Height;
            ulong oldMax = nodes[n].MaxExtent;
            _visits++;
            int top = Rebalance(n);
            if (top != n)
            {
                Replace(i - 1, n, top);
            }
            if (i <= mustReach && nodes[top].Height == oldHeight && nodes[top].MaxExtent == oldMax)
            {
                return;
            }
        }
    }

    // Puts child in the place of old under path[parentAt], or at the root when parentAt is -1.
    private void Replace(int parentAt, int old, int child)
    {
        if (parentAt < 0)
        {
            _root = child;
            return;
        }
        ref Node parent = ref _nodes[_path[parentAt]];
        if (parent.Left == old)
        {
            parent.Left = child;
        }
        else
        {
            parent.Right = child;
        }
    }

    private void Update(int n)
    {
        Node[] nodes = _nodes;
        ref Node x = ref nodes[n];
        // The sentinel has height 0 and extent 0, so a missing child never wins either comparison.
        ref Node left = ref nodes[x.Left];
        ref Node right = ref nodes[x.Right];
        x.Height = Math.Max(left.Height, right.Height) + 1;
        x.MaxExtent = Math.Max(x.Last - x.Start, Math.Max(left.MaxExtent, right.MaxExtent));
    }

    private int Rebalance(int n)
    {
        Update(n);
        Node[] nodes = _nodes;
        int left = nodes[n].Left;
        int right = nodes[n].Right;
        int balance = nodes[left].Height - nodes[right].Height;
        if (balance > 1)
        {
            if (nodes[nodes[left].Left].Height < nodes[nodes[left].Right].Height)
            {
                nodes[n].Left = RotateLeft(left);
            }
            return RotateRight(n);
        }
        if (balance < -1)
        {
            if (nodes[nodes[right].Right].Height < nodes[nodes[right].Left].Height)
            {
                nodes[n].Right = RotateRight(right);
            }
            return RotateLeft(n);
        }
        return n;
    }

    private int RotateRight(int n)
    {
        _visits++;
        int pivot = _nodes[n].Left;
        _nodes[n].Left = _nodes[pivot].Right;
        _nodes[pivot].Right = n;
        Update(n);
        Update(pivot);
        return pivot;
    }

    private int RotateLeft(int n)
    {
        _visits++;
        int pivot = _nodes[n].Right;
        _nodes[n].Right = _nodes[pivot].Left;
        _nodes[pivot].Left = n;
        Update(n);
        Update(pivot);
        return pivot;
    }

    /// <summary>Checks the AVL, order and augmentation invariants (tests only): O(n).</summary>
    internal void Validate()
    {
        ValidateAt(_root, 0, ulong.MaxValue, out int count);
        if (count != _count)
        {
            throw new InvalidOperationException($"Tree holds {count} nodes but counts {_count}.");
        }
    }

    private (int Height, ulong MaxExtent) ValidateAt(int n, ulong low, ulong high, out int count)
    {
        count = 0;
        if (n == Nil)
        {
            return (0, 0);
        }
        Node x = _nodes[n];
        if (x.Start < low || x.Last > high || x.Last < x.Start)
        {
            throw new InvalidOperationException($"Node [0x{x.Start:x}-0x{x.Last:x}] is out of order.");
        }
        // A left child of a node at 0, or a right child of one ending at 2^64-1, has no room: (low, high) is empty.
        if ((x.Start == 0 && x.Left != Nil) || (x.Last == ulong.MaxValue && x.Right != Nil))
        {
            throw new InvalidOperationException($"Node [0x{x.Start:x}-0x{x.Last:x}] has a child outside the address space.");
        }
        int leftCount = 0;
        int rightCount = 0;
        (int lh, ulong lm) = x.Left == Nil ? (0, 0UL) : ValidateAt(x.Left, low, x.Start - 1, out leftCount);
        (int rh, ulong rm) = x.Right == Nil ? (0, 0UL) : ValidateAt(x.Right, x.Last + 1, high, out rightCount);
        int height = Math.Max(lh, rh) + 1;
        ulong max = Math.Max(x.Last - x.Start, Math.Max(lm, rm));
        if (Math.Abs(lh - rh) > 1 || x.Height != height || x.MaxExtent != max)
        {
            throw new InvalidOperationException($"Node [0x{x.Start:x}-0x{x.Last:x}] is unbalanced or its summary is stale.");
        }
        count = leftCount + rightCount + 1;
        return (height, max);
    }

    private struct Node
    {
        public ulong Start;
        public ulong Last;
        public ulong MaxExtent;
        public int Left;
        public int Right;
        public int Height;
    }
}

// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// The simulated machine's <c>/dev</c> and <c>/sys</c>: directories, text attributes, symbolic links and character
/// device nodes, with path resolution that follows links as Linux does (relative targets from the link's folder,
/// at most 40 links, ENOENT / ENOTDIR / ELOOP).
/// </summary>
internal sealed class VirtualFileSystem
{
    private const int MaxLinks = 40;
    private readonly DirectoryNode _root = new();

    internal abstract class Node;

    internal sealed class DirectoryNode : Node
    {
        internal SortedDictionary<string, Node> Children { get; } = new(StringComparer.Ordinal);
    }

    internal sealed class TextNode(Func<string> read) : Node
    {
        internal Func<string> Read { get; } = read;
    }

    internal sealed class LinkNode(string target) : Node
    {
        internal string Target { get; } = target;
    }

    /// <summary>A character device node; <see cref="Open"/> creates the open file or returns <c>-errno</c>.</summary>
    internal sealed class DeviceNode(uint major, uint minor, Func<(int Result, SimFile? File)> open) : Node
    {
        internal uint Major { get; } = major;
        internal uint Minor { get; } = minor;
        internal Func<(int Result, SimFile? File)> Open { get; } = open;
    }

    internal void AddDirectory(string path) => _ = EnsureDirectory(path);

    internal void AddText(string path, string text) => Add(path, new TextNode(() => text));

    internal void AddText(string path, Func<string> read) => Add(path, new TextNode(read));

    internal void AddLink(string path, string target) => Add(path, new LinkNode(target));

    internal void AddDevice(string path, DeviceNode node) => Add(path, node);

    /// <summary>Removes the entry at <paramref name="path"/> (and everything below it); no-op when absent.</summary>
    internal void Remove(string path)
    {
        (string parent, string name) = Split(path);
        if (Lookup(parent, followFinal: false, out Node? node) == 0 && node is DirectoryNode directory)
        {
            directory.Children.Remove(name);
        }
    }

    private void Add(string path, Node node)
    {
        (string parent, string name) = Split(path);
        EnsureDirectory(parent).Children[name] = node;
    }

    private DirectoryNode EnsureDirectory(string path)
    {
        DirectoryNode current = _root;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!current.Children.TryGetValue(part, out Node? next))
            {
                next = new DirectoryNode();
                current.Children[part] = next;
            }
            current = next as DirectoryNode ?? throw new InvalidOperationException($"{path}: '{part}' is not a directory in the simulated file system.");
        }
        return current;
    }

    private static (string Parent, string Name) Split(string path)
    {
        string trimmed = path.TrimEnd('/');
        int slash = trimmed.LastIndexOf('/');
        return slash <= 0 ? ("/", trimmed.TrimStart('/')) : (trimmed[..slash], trimmed[(slash + 1)..]);
    }

    /// <summary>Resolves <paramref name="path"/>; links in the middle are always followed, the last one only when
    /// <paramref name="followFinal"/>. Returns 0, <c>-ENOENT</c>, <c>-ENOTDIR</c> or <c>-ELOOP</c>.</summary>
    internal int Lookup(string path, bool followFinal, out Node? node)
    {
        node = null;
        if (!path.StartsWith('/'))
        {
            return -(int)Vfio.Core.Errno.ENOENT;
        }
        var pending = new Stack<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var stack = new List<DirectoryNode> { _root };
        int links = 0;
        Node current = _root;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (current is not DirectoryNode directory)
            {
                return -(int)Vfio.Core.Errno.ENOTDIR;
            }
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                if (stack.Count > 1)
                {
                    stack.RemoveAt(stack.Count - 1);
                }
                current = stack[^1];
                continue;
            }
            if (!directory.Children.TryGetValue(part, out Node? next))
            {
                return -(int)Vfio.Core.Errno.ENOENT;
            }
            if (next is LinkNode link && (pending.Count > 0 || followFinal))
            {
                if (++links > MaxLinks)
                {
                    return -(int)Vfio.Core.Errno.ELOOP;
                }
                foreach (string targetPart in link.Target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
                {
                    pending.Push(targetPart);
                }
                if (link.Target.StartsWith('/'))
                {
                    stack.RemoveRange(1, stack.Count - 1);
                }
                current = stack[^1];
                continue;
            }
            current = next;
            if (next is DirectoryNode nextDirectory)
            {
                stack.Add(nextDirectory);
            }
            else if (pending.Count > 0 && next is not LinkNode)
            {
                // A file in the middle of the path.
                return -(int)Vfio.Core.Errno.ENOTDIR;
            }
        }
        node = current;
        return 0;
    }
}

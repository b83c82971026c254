// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>How <see cref="DmaBuffer.Allocate"/> backs a buffer.</summary>
public sealed record DmaBufferOptions
{
    /// <summary>The defaults: normal pages.</summary>
    public static DmaBufferOptions Default { get; } = new();

    /// <summary>Whether to use huge pages; <see cref="HugePagePolicy.None"/> by default.</summary>
    public HugePagePolicy HugePages { get; init; }
}

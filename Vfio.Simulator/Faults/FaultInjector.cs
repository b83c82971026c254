// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// Makes the simulated kernel fail on purpose: the n-th call of an ioctl returns a chosen errno before the model
/// sees it (as if the kernel had failed there), so error paths and their clean-up can be tested.
/// </summary>
/// <example>
/// <code>
/// kernel.Faults.FailIoctl(VfioUapi.VFIO_IOMMU_MAP_DMA, nth: 3, Errno.ENOMEM); // the 3rd MAP_DMA from now fails
/// </code>
/// </example>
public sealed class FaultInjector
{
    private readonly List<Rule> _rules = [];
    private readonly Dictionary<uint, long> _calls = [];

    private sealed class Rule(uint request, long at, Errno errno, bool repeat)
    {
        internal uint Request { get; } = request;
        internal long At { get; } = at;
        internal Errno Errno { get; } = errno;
        internal bool Repeat { get; } = repeat;
    }

    /// <summary>Fails the <paramref name="nth"/> call (1 = the next one) of <paramref name="request"/> from now on,
    /// counting calls on every fd, with <paramref name="errno"/>.</summary>
    /// <param name="request">The ioctl request number.</param>
    /// <param name="nth">Which call, counting from 1 for the next.</param>
    /// <param name="errno">The error to return.</param>
    /// <param name="andAfter">True to fail every call from that one on.</param>
    public void FailIoctl(uint request, int nth, Errno errno, bool andAfter = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nth, 1);
        ArgumentOutOfRangeException.ThrowIfEqual((int)errno, 0, nameof(errno));
        lock (_rules)
        {
            _calls.TryGetValue(request, out long seen);
            _rules.Add(new Rule(request, seen + nth, errno, andAfter));
        }
    }

    /// <summary>Removes every rule.</summary>
    public void Clear()
    {
        lock (_rules)
        {
            _rules.Clear();
        }
    }

    /// <summary>How many times <paramref name="request"/> was issued on simulated files.</summary>
    /// <param name="request">The ioctl request number.</param>
    public long CallCount(uint request)
    {
        lock (_rules)
        {
            return _calls.TryGetValue(request, out long n) ? n : 0;
        }
    }

    /// <summary>Counts a call; returns <c>-errno</c> when a rule says it fails, else 0.</summary>
    internal int Check(uint request)
    {
        lock (_rules)
        {
            long n = _calls.TryGetValue(request, out long seen) ? seen + 1 : 1;
            _calls[request] = n;
            foreach (Rule rule in _rules)
            {
                if (rule.Request == request && (n == rule.At || (rule.Repeat && n > rule.At)))
                {
                    return -(int)rule.Errno;
                }
            }
            return 0;
        }
    }
}

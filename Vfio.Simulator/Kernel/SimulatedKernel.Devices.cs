// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    /// <summary>Runs device work that does not come from a call into the kernel (a model's timer, an access through
    /// a BAR mapping) under the kernel's lock, so it never races with an ioctl. Skipped once the kernel is disposed.</summary>
    /// <returns>False when the kernel is disposed and the work did not run.</returns>
    internal bool RunDeviceWork<TState>(Action<TState> work, TState state)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }
            work(state);
            return true;
        }
    }

    /// <summary>Runs a device access that returns a value under the kernel's lock (see <see cref="RunDeviceWork{TState}"/>).</summary>
    internal TResult RunDeviceAccess<TState, TResult>(Func<TState, TResult> access, TState state)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return access(state);
        }
    }

    /// <summary>Every device of the machine, in topology order (for PCI hot reset's affected-device set).</summary>
    internal IEnumerable<SimDevice> AllDevices => _devices.Values;
}

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

    /// <summary>
    /// Fault injection: the kernel asks user space to release <paramref name="device"/>, as vfio-pci's request op does
    /// when the device is about to be unbound — its <c>VFIO_PCI_REQ_IRQ_INDEX</c> eventfd is signalled once.
    /// </summary>
    /// <param name="device">The device name (PCI address or platform name).</param>
    /// <returns>True when a request eventfd was registered and signalled; false when none was (the kernel would then
    /// only log and wait), or the device has no VFIO driver.</returns>
    /// <exception cref="ArgumentException">No such device.</exception>
    public bool RequestDeviceRemoval(string device)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        lock (_lock)
        {
            Enter();
            SimDevice found = FindDevice(device) ?? throw new ArgumentException($"No device '{device}' in this machine.", nameof(device));
            return !found.Removed && found.VfioDriver is { } driver && driver.RequestRelease();
        }
    }

    /// <summary>
    /// Fault injection: surprise removal of <paramref name="device"/> (hot-unplug without warning). From now on its
    /// device fds fail every ioctl, read, write and mmap with <c>ENODEV</c>, its BAR mappings read all-ones and drop
    /// writes, it does no DMA, and it is gone from sysfs and <c>/dev/vfio/devices</c>; fds already open still close
    /// and release cleanly (group, container and iommufd state is released as usual).
    /// </summary>
    /// <param name="device">The device name (PCI address or platform name).</param>
    /// <exception cref="ArgumentException">No such device.</exception>
    public void RemoveDevice(string device)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        lock (_lock)
        {
            Enter();
            SimDevice found = FindDevice(device) ?? throw new ArgumentException($"No device '{device}' in this machine.", nameof(device));
            if (found.Removed)
            {
                return;
            }
            found.Removed = true;
            string bus = found.Bus == SimulatedBus.Pci ? "pci" : "platform";
            _fs.Remove(found.SysfsPath);
            _fs.Remove($"/sys/bus/{bus}/devices/{found.Name}");
            if (!string.IsNullOrEmpty(found.Driver))
            {
                _fs.Remove($"/sys/bus/{bus}/drivers/{found.Driver}/{found.Name}");
            }
            if (found.Group.Id >= 0)
            {
                _fs.Remove($"/sys/kernel/iommu_groups/{found.Group.Id}/devices/{found.Name}");
            }
            if (found.CdevIndex is int index)
            {
                _fs.Remove($"/dev/vfio/devices/vfio{index}");
                _fs.Remove($"/sys/dev/char/{VfioCdevMajor}:{index}");
            }
            if (found.Group.Id >= 0 && !found.Group.Devices.Any(d => d.IsVfio && !d.Removed))
            {
                // The group's last VFIO device went: its /dev/vfio node goes too (open group fds stay usable for close).
                _fs.Remove($"/dev/vfio/{found.Group.NodeName}");
                _fs.Remove($"/sys/dev/char/{VfioGroupMajor}:{found.Group.Id}");
            }
        }
    }
}

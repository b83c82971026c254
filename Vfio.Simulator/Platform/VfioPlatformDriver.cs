// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

// Eventfd references (SimEventFd.Get) move into the line state, which releases them on replace and close.
#pragma warning disable CA2000

namespace Vfio.Simulator;

/// <summary>
/// The simulated vfio-platform driver (drivers/vfio/platform) serving an <see cref="EmulatedPlatformDevice"/>:
/// MMIO regions at <c>index &lt;&lt; 40</c>, level (automasked) and edge interrupt lines, reset.
/// </summary>
internal sealed class VfioPlatformDriver(EmulatedPlatformDevice model) : VfioCoreDriver
{
    private readonly EmulatedPlatformDevice _model = model;
    private readonly Line[] _lines = [.. model.Irqs.Select(i => new Line(i.LevelTriggered))];

    internal override string DriverName => "vfio-platform";

    private uint NumRegions => (uint)_model.Regions.Count;

    private uint NumIrqs => (uint)_lines.Length;

    internal override void OpenDevice()
    {
        if (_model.SupportsReset)
        {
            _model.HardwareReset();
        }
        foreach (Line line in _lines)
        {
            line.Masked = false;
        }
    }

    internal override void CloseDevice()
    {
        if (_model.SupportsReset)
        {
            _model.HardwareReset();
        }
        foreach (Line line in _lines)
        {
            line.SetTrigger(null);
            line.SetVirqFd(mask: true, null);
            line.SetVirqFd(mask: false, null);
            line.Masked = false;
        }
    }

    protected override int DriverIoctl(uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_DEVICE_GET_INFO)
        {
            return GetInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_REGION_INFO)
        {
            return GetRegionInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_GET_IRQ_INFO)
        {
            return GetIrqInfo(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_SET_IRQS)
        {
            return SetIrqs(argument);
        }
        if (request == VfioUapi.VFIO_DEVICE_RESET)
        {
            if (!_model.SupportsReset)
            {
                return -EINVAL;
            }
            _model.HardwareReset();
            return 0;
        }
        return -ENOTTY;
    }

    private int GetInfo(nint argument)
    {
        const int Minsz = 16;
        if (UserMemory.Read(argument, Minsz, out vfio_device_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz)
        {
            return -EINVAL;
        }
        info.flags = VfioUapi.VFIO_DEVICE_FLAGS_PLATFORM | (_model.SupportsReset ? VfioUapi.VFIO_DEVICE_FLAGS_RESET : 0);
        info.num_regions = NumRegions;
        info.num_irqs = NumIrqs;
        return UserMemory.Write(argument, Minsz, in info) < 0 ? -EFAULT : 0;
    }

    private uint RegionFlags(PlatformRegion region)
        => region.IoPort ? 0 : VfioUapi.VFIO_REGION_INFO_FLAG_READ
        | (region.Writable ? VfioUapi.VFIO_REGION_INFO_FLAG_WRITE : 0)
        | (region.Mappable && region.Size >= PageSize && region.Size % PageSize == 0 ? VfioUapi.VFIO_REGION_INFO_FLAG_MMAP : 0);

    private int GetRegionInfo(nint argument)
    {
        const int Minsz = 32;
        if (UserMemory.Read(argument, Minsz, out vfio_region_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz || info.index >= NumRegions)
        {
            return -EINVAL;
        }
        PlatformRegion region = _model.Regions[(int)info.index];
        info.offset = (ulong)info.index << OffsetShift;
        info.size = region.Size;
        info.flags = RegionFlags(region);
        return UserMemory.Write(argument, Minsz, in info) < 0 ? -EFAULT : 0;
    }

    private int GetIrqInfo(nint argument)
    {
        const int Minsz = 16;
        if (UserMemory.Read(argument, Minsz, out vfio_irq_info info) < 0)
        {
            return -EFAULT;
        }
        if (info.argsz < Minsz || info.index >= NumIrqs)
        {
            return -EINVAL;
        }
        info.flags = _lines[info.index].Level
            ? VfioUapi.VFIO_IRQ_INFO_EVENTFD | VfioUapi.VFIO_IRQ_INFO_MASKABLE | VfioUapi.VFIO_IRQ_INFO_AUTOMASKED
            : VfioUapi.VFIO_IRQ_INFO_EVENTFD;
        info.count = 1;
        return UserMemory.Write(argument, Minsz, in info) < 0 ? -EFAULT : 0;
    }

    private int SetIrqs(nint argument)
    {
        // Quirk: the per-index bound is the total number of IRQs.
        uint total = NumIrqs;
        int rc = ReadSetIrqs(argument, total, _ => total, out vfio_irq_set header, out byte[] data);
        if (rc < 0)
        {
            return rc;
        }
        uint type = header.flags & VfioUapi.VFIO_IRQ_SET_DATA_TYPE_MASK;
        Line line = _lines[header.index];
        switch (header.flags & VfioUapi.VFIO_IRQ_SET_ACTION_TYPE_MASK)
        {
            case VfioUapi.VFIO_IRQ_SET_ACTION_MASK:
            case VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK:
            {
                bool mask = (header.flags & VfioUapi.VFIO_IRQ_SET_ACTION_MASK) != 0;
                if (header.start != 0 || header.count != 1 || !line.Level)
                {
                    return -EINVAL;
                }
                if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
                {
                    // A mask or unmask irqfd (virqfd): signalling it masks or unmasks the line.
                    int fd = FdAt(data, 0);
                    if (fd < 0)
                    {
                        line.SetVirqFd(mask, null);
                        return 0;
                    }
                    rc = VirqFd.Create(Device.Kernel, fd, mask ? line.Mask : line.Unmask, out VirqFd? virqfd);
                    if (rc < 0)
                    {
                        return rc;
                    }
                    if (line.HasVirqFd(mask))
                    {
                        virqfd!.Dispose();
                        return -(int)Errno.EBUSY;
                    }
                    line.SetVirqFd(mask, virqfd);
                    return 0;
                }
                if (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[0] != 0)
                {
                    if (mask)
                    {
                        line.Mask();
                    }
                    else
                    {
                        line.Unmask();
                    }
                }
                return 0;
            }
            case VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER:
                if (header.count == 0 && type == VfioUapi.VFIO_IRQ_SET_DATA_NONE)
                {
                    line.SetTrigger(null);
                    return 0;
                }
                if (header.start != 0 || header.count != 1)
                {
                    return -EINVAL;
                }
                if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
                {
                    int fd = FdAt(data, 0);
                    line.SetTrigger(null);
                    if (fd < 0)
                    {
                        return 0;
                    }
                    rc = SimEventFd.Get(fd, out SimEventFd? trigger);
                    if (rc < 0)
                    {
                        return rc;
                    }
                    line.SetTrigger(trigger);
                    line.Evaluate();
                    return 0;
                }
                if (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[0] != 0)
                {
                    line.Handle();
                }
                return 0;
            default:
                return -ENOTTY;
        }
    }

    /// <summary>The device drives line <paramref name="irq"/>.</summary>
    internal void SetLine(int irq, bool asserted)
    {
        Line line = _lines[irq];
        bool rising = asserted && !line.Asserted;
        line.Asserted = asserted;
        if (line.Level ? asserted : rising)
        {
            line.Evaluate();
        }
    }

    protected override uint RegionCount => NumRegions;

    protected override long RegionReadWrite(int index, Span<byte> buffer, ulong pos, bool write)
    {
        PlatformRegion region = _model.Regions[index];
        if (region.IoPort || (write && !region.Writable))
        {
            return -EINVAL;
        }
        if (pos >= region.Size)
        {
            return -EINVAL;
        }
        int count = (int)Math.Min((ulong)buffer.Length, region.Size - pos);
        int done = 0;
        while (done < count)
        {
            ulong at = pos + (ulong)done;
            int left = count - done;
            int width = left >= 4 && at % 4 == 0 ? 4 : left >= 2 && at % 2 == 0 ? 2 : 1;
            Span<byte> piece = buffer.Slice(done, width);
            if (write)
            {
                _model.HardwareWrite(index, at, width, ReadLittleEndian(piece));
            }
            else
            {
                WriteLittleEndian(piece, _model.HardwareRead(index, at, width));
            }
            done += width;
        }
        return count;
    }

    internal override int Map(long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
    {
        mapping = null;
        if (length == 0 || (offset & (long)(PageSize - 1)) != 0)
        {
            return -EINVAL;
        }
        ulong index = (ulong)offset >> OffsetShift;
        if (index >= NumRegions)
        {
            return -EINVAL;
        }
        PlatformRegion region = _model.Regions[(int)index];
        uint flags = RegionFlags(region);
        if ((flags & VfioUapi.VFIO_REGION_INFO_FLAG_MMAP) == 0)
        {
            return -EINVAL;
        }
        if ((protection & MemoryProtection.Write) != 0 && (flags & VfioUapi.VFIO_REGION_INFO_FLAG_WRITE) == 0)
        {
            return -EINVAL;
        }
        ulong start = (ulong)offset & OffsetMask;
        ulong requested = (length + PageSize - 1) & ~(PageSize - 1);
        if (region.Size < PageSize || start + requested > region.Size)
        {
            return -EINVAL;
        }
        return EmulatedRegionMapping.Create(new RegionWindow(this, (int)index), start, length, offset, alignment, out mapping);
    }

    private sealed class RegionWindow(VfioPlatformDriver driver, int region) : IMappedRegion
    {
        public SimulatedKernel Kernel => driver.Device.Kernel;

        public ulong ReadMapped(ulong offset, int width) => driver.Device.Removed
            ? ulong.MaxValue >> (64 - (8 * width))
            : width == 8
                ? driver._model.HardwareRead(region, offset, 4) | (driver._model.HardwareRead(region, offset + 4, 4) << 32)
                : driver._model.HardwareRead(region, offset, width);

        public void WriteMapped(ulong offset, int width, ulong value)
        {
            if (driver.Device.Removed)
            {
                return;
            }
            if (width == 8)
            {
                driver._model.HardwareWrite(region, offset, 4, (uint)value);
                driver._model.HardwareWrite(region, offset + 4, 4, value >> 32);
            }
            else
            {
                driver._model.HardwareWrite(region, offset, width, value);
            }
        }
    }

    /// <summary>One interrupt line: its trigger eventfd, mask state and the device's level.</summary>
    private sealed class Line(bool level)
    {
        private SimEventFd? _trigger;
        private VirqFd? _maskFd;
        private VirqFd? _unmaskFd;

        internal bool Level { get; } = level;

        internal bool Masked { get; set; }

        internal bool Asserted { get; set; }

        internal void SetTrigger(SimEventFd? trigger)
        {
            _trigger?.Dispose();
            _trigger = trigger;
        }

        internal bool HasVirqFd(bool mask) => (mask ? _maskFd : _unmaskFd) is not null;

        internal void SetVirqFd(bool mask, VirqFd? virqfd)
        {
            ref VirqFd? slot = ref mask ? ref _maskFd : ref _unmaskFd;
            slot?.Dispose();
            slot = virqfd;
        }

        /// <summary>vfio_platform_mask: disables the line if it is not masked yet.</summary>
        internal void Mask() => Masked = true;

        /// <summary>vfio_platform_unmask: re-enables a masked line; a still-asserted level fires again at once.</summary>
        internal void Unmask()
        {
            if (Masked)
            {
                Masked = false;
                Evaluate();
            }
        }

        /// <summary>The line is enabled (a trigger is installed and it is unmasked) and the device asserts it.</summary>
        internal void Evaluate()
        {
            if (_trigger is not null && !Masked && Asserted)
            {
                Handle();
            }
        }

        /// <summary>The interrupt handler: automasked for level lines (mask, then signal), a plain signal for edge lines.</summary>
        internal void Handle()
        {
            if (!Level)
            {
                _trigger?.Signal();
                return;
            }
            if (!Masked)
            {
                Masked = true;
                _trigger?.Signal();
            }
        }
    }
}

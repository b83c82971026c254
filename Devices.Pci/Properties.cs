// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;

// Test assemblies only; product assemblies see each other through public API alone.
[assembly: InternalsVisibleTo("Vfio.Devices.Pci.Tests")]

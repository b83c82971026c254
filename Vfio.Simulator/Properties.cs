// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;

// Native calls are LibraryImports over blittable types only.
[assembly: DisableRuntimeMarshalling]

[assembly: InternalsVisibleTo("Vfio.Simulator.Tests")]

// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;

// Every native call is a LibraryImport over blittable types; nothing relies on runtime marshalling.
[assembly: DisableRuntimeMarshalling]

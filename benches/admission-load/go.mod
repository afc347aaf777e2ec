module probegate.io/admission-load

go 1.25.0

from-image-cmd hello-oci
/tmp

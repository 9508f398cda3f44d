"""Messages without ROS: the CDR typestore and message names, image conversions and the output
builder, shared by the node (``ros/``) and bag processing (``bag/``)."""
